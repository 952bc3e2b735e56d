// @medplum/core's MedplumClient (as a Medplum-based app uses any FHIR server) against a running fhirserver.
// Usage: node medplum.mjs <server root URL> <bearer token>. Exits non-zero with the failed expectation.
import assert from 'node:assert/strict';
import { MedplumClient, OperationOutcomeError } from '@medplum/core';

const [root, token] = process.argv.slice(2);
const medplum = new MedplumClient({ baseUrl: root, fhirUrlPath: 'fhir', fetch, cacheTime: 0 });
medplum.setAccessToken(token);
const tag = `medplum-${Date.now()}`;
const meta = { tag: [{ system: 'urn:test', code: tag }] };
const owner = { reference: 'Organization/clients-a' };

const patient = await medplum.createResource({ resourceType: 'Patient', meta, name: [{ text: '王小红' }], managingOrganization: owner });
assert.ok(patient.id);
const again = await medplum.createResourceIfNoneExist(
  { resourceType: 'Patient', meta, identifier: [{ system: 'urn:test:mrn', value: tag }], managingOrganization: owner },
  `identifier=urn:test:mrn|${tag}`);
const twice = await medplum.createResourceIfNoneExist(
  { resourceType: 'Patient', meta, identifier: [{ system: 'urn:test:mrn', value: tag }], managingOrganization: owner },
  `identifier=urn:test:mrn|${tag}`);
assert.equal(twice.id, again.id, 'a conditional create that matches answers the existing resource');

const report = await medplum.createResource({
  resourceType: 'DiagnosticReport', status: 'final', meta, code: { text: '胸部CT' },
  subject: { reference: `Patient/${patient.id}` }, performer: [owner],
});
const read = await medplum.readResource('DiagnosticReport', report.id);
assert.equal(read.code.text, '胸部CT');
const amended = await medplum.updateResource({ ...read, status: 'amended' });
assert.equal(amended.meta.versionId, '2');
const patched = await medplum.patchResource('DiagnosticReport', report.id, [
  { op: 'add', path: '/conclusion', value: '未见异常' }]);
assert.equal(patched.conclusion, '未见异常');
const history = await medplum.readHistory('DiagnosticReport', report.id);
assert.equal(history.entry.length, 3);

const found = await medplum.searchResources('Patient', { _tag: `urn:test|${tag}`, _sort: '_id' });
assert.equal(found.length, 2);
const one = await medplum.searchOne('DiagnosticReport', { subject: `Patient/${patient.id}` });
assert.equal(one.id, report.id);
const withPatient = await medplum.search('DiagnosticReport', {
  _id: report.id, _include: 'DiagnosticReport:subject' });
assert.deepEqual(withPatient.entry.map((e) => e.search.mode), ['match', 'include']);

const pages = [];
for await (const page of medplum.searchResourcePages('Patient', { _tag: `urn:test|${tag}`, _count: 1 })) {
  pages.push(page.length);
}
assert.deepEqual(pages, [1, 1]);

const batch = await medplum.executeBatch({
  resourceType: 'Bundle', type: 'batch', entry: [
    { request: { method: 'GET', url: `Patient/${patient.id}` } },
    { request: { method: 'GET', url: 'Patient/does-not-exist' } },
  ],
});
assert.deepEqual(batch.entry.map((e) => e.response.status.split(' ')[0]), ['200', '404']);

const expansion = await medplum.valueSetExpand({ url: 'http://hr.example.org/fhir/ValueSet/hr-scope-national', filter: '头颅CT' });
assert.ok(expansion.expansion.contains.some((c) => c.code === 'CT-HEAD'));

await medplum.deleteResource('DiagnosticReport', report.id);
await assert.rejects(medplum.readResource('DiagnosticReport', report.id), (error) => {
  assert.ok(error instanceof OperationOutcomeError, 'the OperationOutcome reaches the app as Medplum\'s error');
  return true;
});
await assert.rejects(medplum.createResource({ resourceType: 'Observation', status: 'bogus', code: { text: 'x' } }),
  (error) => {
    const issue = error.outcome.issue[0];
    assert.equal(issue.severity, 'error');
    assert.ok(issue.diagnostics.length > 10, 'a sentence, not a code');
    return true;
  });
console.log(JSON.stringify({ ok: true, patient: patient.id }));
