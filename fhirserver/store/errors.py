"""Storage failures as our own exception, so layers above never import pymongo."""


class StoreUnavailable(Exception):
    """The database did not answer in time or refused the connection."""
