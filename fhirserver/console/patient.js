// The patient's page (a patient-context token): my results from every hospital, and who looked at them, when,
// in plain Chinese (from the AuditEvents the server keeps of every access).
import { ITEM, display, el, entries, fhir, organization } from './api.js';

const EVENT = 'http://hr.example.org/fhir/CodeSystem/hr-event';
const SAID = {
  view: '调阅了您在其他医院的检查检验结果', recognition: '采用了您在其他医院的结果，免去了重复检查',
  'duplicate-prompt': '开单时看到了您已有的检查结果', override: '仍为您重新开了检查（已记录理由）', evaluation: '评价了您在其他医院的结果',
  read: '查看了您的资料', 'search-type': '查询了您的资料', operation: '查询了您的资料', vread: '查看了您的资料',
};

export async function patientView(main, ctx) {
  const s = ctx.session || {};
  if (ctx.config && !s.patient) {
    main.replaceChildren(el('p', { class: 'muted' }, '请以患者身份登录 Log in as a patient to see your page.'));
    return;
  }
  const patient = s.patient ? await fhir(`Patient/${s.patient}`) : null;
  // No patient criterion: the token itself is the person's, under every hospital's record of them.
  const reports = entries(await fhir('DiagnosticReport?_count=100'), 'DiagnosticReport');
  reports.sort((a, b) => String(b.issued || '').localeCompare(String(a.issued || '')));
  const rows = [];
  for (const r of reports) {
    const org = await organization(((r.performer || [])[0] || {}).reference);
    const coding = ((r.code || {}).coding || []).find((c) => c.system === ITEM) || ((r.code || {}).coding || [])[0] || {};
    const name = coding.system === ITEM ? await display(ITEM, coding.code) : (coding.display || coding.code || '检查');
    rows.push(el('li', { class: 'result' }, el('b', {}, name),
      ` · ${org ? org.name : ''} · ${String(r.issued || r.effectiveDateTime || '').slice(0, 10)}`,
      r.conclusion ? el('div', { class: 'muted' }, r.conclusion) : null));
  }
  const events = entries(await fhir('AuditEvent?_count=100'), 'AuditEvent');
  events.sort((a, b) => String(b.recorded).localeCompare(String(a.recorded)));
  // One line per minute, hospital and kind of look (a page view makes several requests).
  const lines = new Map();
  for (const e of events) {
    const who = (e.agent || []).map((a) => (a.who || {}).reference || '').find((r) => r.startsWith('Organization/'));
    if (!who) continue;
    const org = await organization(who);
    const kind = (e.type || {}).system === EVENT ? e.type.code : ((e.subtype || [])[0] || {}).code;
    const text = `${String(e.recorded).replace('T', ' ').slice(0, 16)}，${org ? org.name : who}${SAID[kind] || '访问了您的资料'}`;
    lines.set(text, (lines.get(text) || 0) + 1);
  }
  const seen = [...lines].map(([text, n]) => el('li', { class: 'access' }, `${text}${n > 1 ? `（${n}次）` : ''}。`));
  main.replaceChildren(
    el('section', { class: 'card' }, el('h2', {}, `我的检查检验结果 My results${patient ? `：${(patient.name || [{}])[0].text || ''}` : ''}`),
      el('p', { class: 'muted' }, '来自您就诊过的所有医院 From every hospital you visited.'),
      rows.length ? el('ul', { id: 'my-results' }, rows) : el('p', { class: 'muted' }, '暂无结果 No results yet.')),
    el('section', { class: 'card' }, el('h2', {}, '谁查看过我的结果 Who looked at my results'),
      seen.length ? el('ul', { id: 'my-access' }, seen.slice(0, 50)) : el('p', { class: 'muted' }, '暂无记录 Nobody yet.')));
}
