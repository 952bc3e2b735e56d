// fhir-kit-client (as an EMR vendor's Node.js integration uses it) against a running fhirserver.
// Usage: node fhir_kit_client.mjs <FHIR base URL> <bearer token>. Exits non-zero with the failed expectation.
import assert from 'node:assert/strict';
import { Client } from 'fhir-kit-client';

const [baseUrl, token] = process.argv.slice(2);
const client = new Client({ baseUrl, customHeaders: { Authorization: `Bearer ${token}` } });
const tag = `fkc-${Date.now()}`;
const meta = { tag: [{ system: 'urn:test', code: tag }] };

const capability = await client.capabilityStatement();
assert.equal(capability.fhirVersion, '4.0.1');

const patient = await client.create({
  resourceType: 'Patient',
  body: { resourceType: 'Patient', meta, name: [{ text: '李雷' }], managingOrganization: { reference: 'Organization/clients-a' } },
});
assert.ok(patient.id, 'create answers the resource with its id');

const observation = (value) => ({
  resourceType: 'Observation', status: 'final', meta,
  code: { coding: [{ system: 'http://loinc.org', code: '718-7' }], text: '血红蛋白' },
  subject: { reference: `Patient/${patient.id}` }, performer: [{ reference: 'Organization/clients-a' }],
  valueQuantity: { value, unit: 'g/L', system: 'http://unitsofmeasure.org', code: 'g/L' },
});
const created = [];
for (const value of [120, 130, 140, 150, 160]) {
  created.push(await client.create({ resourceType: 'Observation', body: observation(value) }));
}

const read = await client.read({ resourceType: 'Patient', id: patient.id });
assert.equal(read.name[0].text, '李雷');
assert.equal(read.meta.versionId, '1');

const updated = await client.update({ resourceType: 'Patient', id: patient.id, body: { ...read, gender: 'male' } });
assert.equal(updated.meta.versionId, '2');

const patched = await client.patch({
  resourceType: 'Patient', id: patient.id, jsonPatch: [{ op: 'add', path: '/birthDate', value: '1990-02-03' }],
});
assert.equal(patched.birthDate, '1990-02-03');

const vread = await client.vread({ resourceType: 'Patient', id: patient.id, version: '1' });
assert.equal(vread.gender, undefined);

const history = await client.resourceHistory({ resourceType: 'Patient', id: patient.id });
assert.equal(history.type, 'history');
assert.deepEqual(history.entry.map((e) => e.resource.meta.versionId), ['3', '2', '1']);

// search, then every page by the client's own nextPage (it follows our `next` links)
let page = await client.search({
  resourceType: 'Observation', searchParams: { _tag: `urn:test|${tag}`, _count: 2, _sort: 'value-quantity' },
});
const values = [];
while (page) {
  values.push(...(page.entry ?? []).map((e) => e.resource.valueQuantity.value));
  page = await client.nextPage({ bundle: page });  // undefined after the last page (no next link)
}
assert.deepEqual(values, [120, 130, 140, 150, 160]);

const high = await client.search({
  resourceType: 'Observation', searchParams: { _tag: `urn:test|${tag}`, 'value-quantity': 'gt145', _total: 'accurate' },
});
assert.equal(high.total, 2);

const compartment = await client.compartmentSearch({
  resourceType: 'Observation', compartment: { resourceType: 'Patient', id: patient.id }, searchParams: { _summary: 'count' },
});
assert.equal(compartment.total, 5);

// a transaction with a urn:uuid reference between its entries
const bundle = await client.transaction({
  body: {
    resourceType: 'Bundle', type: 'transaction', entry: [
      { fullUrl: 'urn:uuid:7d0d7e0a-1111-4c2e-9a1b-000000000001',
        resource: { resourceType: 'Patient', meta, name: [{ text: '韩梅梅' }], managingOrganization: { reference: 'Organization/clients-a' } },
        request: { method: 'POST', url: 'Patient' } },
      { resource: { ...observation(110), subject: { reference: 'urn:uuid:7d0d7e0a-1111-4c2e-9a1b-000000000001' } },
        request: { method: 'POST', url: 'Observation' } },
    ],
  },
});
assert.equal(bundle.type, 'transaction-response');
assert.deepEqual(bundle.entry.map((e) => e.response.status.split(' ')[0]), ['201', '201']);

const operation = await client.operation({
  name: '$validate', resourceType: 'Observation', input: observation(99),
});
assert.equal(operation.resourceType, 'OperationOutcome');

await client.delete({ resourceType: 'Observation', id: created[0].id });
await assert.rejects(client.read({ resourceType: 'Observation', id: created[0].id }), (error) => {
  assert.equal(error.response.status, 410);
  assert.equal(error.response.data.resourceType, 'OperationOutcome');
  return true;
});
await assert.rejects(client.read({ resourceType: 'Patient', id: 'does-not-exist' }), (error) => {
  assert.equal(error.response.status, 404);
  return true;
});
console.log(JSON.stringify({ ok: true, patient: patient.id, pages: values.length }));
