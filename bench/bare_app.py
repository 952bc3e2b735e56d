"""The HTTP floor: a Flask app that answers a fixed JSON body, served like fhirserver (gunicorn gthread)."""

from flask import Flask, Response

app = Flask(__name__)
BODY = b'{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]}'


@app.get("/ping")
def ping() -> Response:
    return Response(BODY, content_type="application/fhir+json")
