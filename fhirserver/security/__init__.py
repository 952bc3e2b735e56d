"""Who is calling (tokens, scopes), what they may see (ownership, consent), and the record of every look."""
