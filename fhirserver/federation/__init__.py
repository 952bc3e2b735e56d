"""Federation: this node finds a patient's results on peer nodes through plain FHIR searches."""
