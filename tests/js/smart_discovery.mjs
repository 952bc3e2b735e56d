// fhir-kit-client's SMART discovery against a running fhirserver. Usage: node smart_discovery.mjs <FHIR base URL>
import { Client } from 'fhir-kit-client';

const client = new Client({ baseUrl: process.argv[2] });
const auth = await client.smartAuthMetadata();
console.log(JSON.stringify({ token: String(auth.tokenUrl), authorize: String(auth.authorizeUrl) }));
