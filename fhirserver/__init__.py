"""fhirserver: a FHIR R4 server for mutual recognition of test and imaging results (检查检验结果互认)."""

__version__ = "0.1.0"
