// The administrator's view: statistics as charts and tables (from $statistics: a hospital sees its own, the
// platform all), the network (levels, regions, membership and QC periods; admit and exit), the catalog, the audit.
import { ITEM, download, el, entries, fhir, levelOf, regionOf, toast, today, values } from './api.js';
import { bars } from './charts.js';

const AFFILIATION = 'http://hr.example.org/fhir/CodeSystem/hr-affiliation';
const TABS = [['stats', '统计 Statistics'], ['network', '机构 Network'], ['catalog', '目录 Catalog'], ['audit', '审计 Audit']];
const MEASURES = [['view', '调阅 Views'], ['duplicate-prompt', '提示 Prompts'], ['recognition', '互认 Recognitions'],
  ['repeat-avoided', '避免重复 Repeats avoided'], ['override', '复查 Overrides'], ['evaluation', '评价 Evaluations']];
const PROVINCES = [['500000', '重庆市'], ['510000', '四川省'], ['520000', '贵州省'], ['430000', '湖南省']];

export async function adminView(main, ctx) {
  const tab = TABS.some(([k]) => k === ctx.args[0]) ? ctx.args[0] : 'stats';
  const nav = el('nav', { class: 'tabs' }, TABS.map(([k, label]) => el('a', { href: `#admin/${k}`, class: k === tab ? 'active' : '', id: `tab-${k}` }, label)));
  const body = el('div', { id: `admin-${tab}` });
  main.replaceChildren(el('section', { class: 'card' }, el('h2', {}, '管理 Administration'), nav), body);
  await { stats, network, catalog, audit }[tab](body, ctx);
}

function platform(ctx) {
  return !ctx.config || ((ctx.session || {}).scope || '').includes('system/');
}

async function report(query) {
  const measure = await fhir(`$statistics?${new URLSearchParams(query)}`);
  const out = { saved: 0, reasons: [] };
  for (const group of measure.group || []) {
    const code = ((group.code.coding || [])[0] || {}).code;
    if (code) out[code] = group.measureScore.value;
    else if ((group.measureScore || {}).unit === 'CNY') out.saved = group.measureScore.value;
    if (code === 'override' && group.stratifier) {
      out.reasons = group.stratifier[0].stratum.map((s) => [s.value.coding[0].display, s.measureScore.value]);
    }
  }
  out.rate = out['duplicate-prompt'] ? out.recognition / out['duplicate-prompt'] : null; // no prompts: no rate
  return out;
}

function rate(r) {
  return r.rate === null ? '—' : `${Math.round(r.rate * 100)}%`;
}

function months(n) {
  const out = [];
  const now = new Date();
  for (let i = n - 1; i >= 0; i -= 1) {
    const first = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1));
    const last = new Date(Date.UTC(first.getUTCFullYear(), first.getUTCMonth() + 1, 0));
    out.push([first.toISOString().slice(0, 7), first.toISOString().slice(0, 10), last.toISOString().slice(0, 10)]);
  }
  return out;
}

function table(id, head, rows) {
  return el('table', { class: 'list', id }, el('tr', {}, head.map((h) => el('th', {}, h))),
    rows.map((r) => el('tr', {}, r.map((c) => el('td', {}, c)))));
}

async function stats(body, ctx) {
  const totals = await report({});
  const byMonth = [];
  for (const [label, start, end] of months(6)) byMonth.push([label, await report({ 'period-start': start, 'period-end': end })]);
  const byCategory = [];
  for (const [code, label] of [['LAB', '检验 Lab'], ['IMG', '影像 Imaging'], ['ECG', '心电 ECG'], ['PATH', '病理 Pathology']]) {
    byCategory.push([label, await report({ category: code })]);
  }
  const byHospital = [];
  const byRegion = [];
  if (platform(ctx)) {
    const orgs = entries(await fhir('Organization?_count=200'), 'Organization').filter((o) => levelOf(o));
    for (const org of orgs) byHospital.push([org.name, await report({ organization: `Organization/${org.id}` })]);
    for (const [code, name] of PROVINCES) byRegion.push([name, await report({ region: code })]);
  }
  const head = ['', ...MEASURES.map(([, l]) => l), '互认率 Rate', '节省(元) Saved CNY'];
  const line = (label, r) => [label, ...MEASURES.map(([k]) => String(r[k] ?? 0)), rate(r), String(r.saved)];
  const sections = [
    el('div', { class: 'kpis', id: 'kpis' },
      [['互认次数 Recognitions', totals.recognition], ['避免重复检查 Repeats avoided', totals['repeat-avoided']],
        ['节省费用 Money saved (CNY)', totals.saved], ['跨机构调阅 Views', totals.view],
        ['互认率 Recognition rate', rate(totals)], ['复查 Overrides', totals.override]]
        .map(([label, value], i) => el('div', { class: 'kpi', id: `kpi-${i}` }, el('b', {}, String(value ?? 0)), el('span', {}, label)))),
    el('h3', {}, '按月 By month'), bars('互认次数 Recognitions by month', byMonth.map(([l, r]) => ({ label: l, value: r.recognition || 0 }))),
    table('by-month', head, byMonth.map(([l, r]) => line(l, r))),
    el('h3', {}, '按类别 By category'), table('by-category', head, byCategory.map(([l, r]) => line(l, r))),
  ];
  if (byHospital.length) sections.push(el('h3', {}, '按医院 By hospital'), table('by-hospital', head, byHospital.map(([l, r]) => line(l, r))));
  if (byRegion.length) sections.push(el('h3', {}, '按地区 By region'), table('by-region', head, byRegion.map(([l, r]) => line(l, r))));
  sections.push(el('h3', {}, '复查理由 Re-order reasons'),
    totals.reasons.length ? table('reasons', ['理由 Reason', '次数 Count'], totals.reasons.map(([r, n]) => [r, String(n)])) : el('p', { class: 'muted' }, '暂无 None yet.'));
  const csv = () => {
    const rows = [head, ...byMonth.map(([l, r]) => line(l, r)), ...byCategory.map(([l, r]) => line(l, r)),
      ...byHospital.map(([l, r]) => line(l, r)), ...byRegion.map(([l, r]) => line(l, r))];
    download(`recognition-statistics-${today()}.csv`, `\ufeff${rows.map((r) => r.map((c) => `"${String(c).replace(/"/g, '""')}"`).join(',')).join('\r\n')}\r\n`, 'text/csv');
  };
  body.replaceChildren(el('button', { type: 'button', id: 'export-csv', onclick: csv }, '导出CSV Export CSV'), ...sections);
}

async function network(body, ctx) {
  const orgs = entries(await fhir('Organization?_count=200'), 'Organization').filter((o) => levelOf(o));
  const affiliations = entries(await fhir('OrganizationAffiliation?_count=500'), 'OrganizationAffiliation');
  const of = (org, code) => affiliations.filter((a) => (a.participatingOrganization || {}).reference === `Organization/${org.id}`
    && (a.code || []).some((c) => (c.coding || []).some((x) => x.system === AFFILIATION && x.code === code)));
  const period = (a) => `${(a.period || {}).start || '…'} – ${(a.period || {}).end || ''}${a.active === false ? ' (停用)' : ''}`;
  const rows = orgs.map((org) => {
    const member = of(org, 'network-member');
    const open = member.find((a) => !(a.period || {}).end && a.active !== false);
    const action = platform(ctx) ? (open
      ? el('button', { type: 'button', class: 'exit', onclick: () => exit(open, body, ctx) }, '退出 Exit')
      : el('button', { type: 'button', class: 'admit', onclick: () => admit(org, member[0], body, ctx) }, '纳入 Admit')) : null;
    return el('tr', { id: `org-${org.id}` }, el('td', {}, org.name), el('td', {}, levelOf(org)), el('td', {}, regionOf(org)),
      el('td', {}, member.map(period).join('; ')),
      el('td', {}, of(org, 'qc-accredited').map((a) => `${(a.specialty || []).map((s) => s.coding[0].code).join('/')} ${period(a)}`).join('; ')),
      el('td', {}, of(org, 'alliance-member').map((a) => (a.organization || {}).reference).join('; ')), el('td', {}, action));
  });
  body.replaceChildren(el('table', { class: 'list', id: 'network' },
    el('tr', {}, ['机构 Hospital', '级别 Level', '地区 Region', '互认网络 Membership', '质控 QC', '医联体 Alliance', ''].map((h) => el('th', {}, h))), rows));
}

async function exit(affiliation, body, ctx) {
  try {
    await fhir(`OrganizationAffiliation/${affiliation.id}`, { method: 'PUT', body: { ...affiliation, period: { ...(affiliation.period || {}), end: today() } } });
    toast('已退出互认网络 Exited the network.');
    await network(body, ctx);
  } catch (error) {
    toast(`未能保存 Not stored: ${error.message}`, 'error');
  }
}

async function admit(org, previous, body, ctx) {
  const owner = previous ? previous.organization : { reference: (ctx.session || {}).organization };
  try {
    await fhir('OrganizationAffiliation', { method: 'POST', body: { resourceType: 'OrganizationAffiliation', active: true,
      period: { start: today() }, organization: owner, participatingOrganization: { reference: `Organization/${org.id}` },
      code: [{ coding: [{ system: AFFILIATION, code: 'network-member' }] }] } });
    toast('已纳入互认网络 Admitted to the network.');
    await network(body, ctx);
  } catch (error) {
    toast(`未能保存 Not stored: ${error.message}`, 'error');
  }
}

async function catalog(body) {
  const system = await fhir('CodeSystem/hr-item');
  const facts = new Map();
  const walk = (nodes) => nodes.forEach((c) => { facts.set(c.code, c); walk(c.concept || []); });
  walk(system.concept || []);
  const scopes = entries(await fhir('ValueSet?_count=100'), 'ValueSet').filter((v) => v.id.startsWith('hr-scope-') && v.id !== 'hr-scope-national');
  const members = new Map();
  for (const scope of scopes) {
    const expansion = await fhir(`ValueSet/${scope.id}/$expand?count=1000`);
    members.set(scope.id, new Set((expansion.expansion.contains || []).map((c) => c.code)));
  }
  const input = el('input', { id: 'catalog-filter', placeholder: '项目名称、编码、LOINC、MRI… Name, code, LOINC', size: 36 });
  const out = el('div', {});
  const search = async (e) => {
    if (e) e.preventDefault();
    const expansion = await fhir(`ValueSet/$expand?${new URLSearchParams({ url: 'http://hr.example.org/fhir/ValueSet/hr-scope-national', filter: input.value, count: '100' })}`);
    const prop = (c, name) => { const p = (c.property || []).find((x) => x.code === name); return p ? Object.entries(p).find(([k]) => k.startsWith('value'))[1] : ''; };
    out.replaceChildren(table('catalog', ['编码 Code', '名称 Name', '有效期(天) Days', '最低级别 Min level', '价格 Price', 'LOINC', '互认范围 Scopes'],
      (expansion.expansion.contains || []).map((c) => {
        const concept = facts.get(c.code) || {};
        const loinc = prop(concept, 'loinc');
        return [c.code, c.display, String(prop(concept, 'validity-days')), String(prop(concept, 'min-level')), String(prop(concept, 'price')),
          loinc ? loinc.code : '', scopes.filter((s) => members.get(s.id).has(c.code)).map((s) => s.id.replace('hr-scope-', '')).join(' ')];
      })));
  };
  body.replaceChildren(el('form', { class: 'search', onsubmit: search }, input, el('button', { type: 'submit', id: 'catalog-find' }, '查找 Find')), out);
  await search();
}

async function audit(body) {
  let chain;
  try {
    const v = values(await fhir('AuditEvent/$verify-chain'));
    chain = el('p', { id: 'chain', class: v.intact ? 'ok' : 'error' },
      v.intact ? `审计链完整 The audit chain is intact: ${v.events} events` : `审计链有问题 The chain is broken: ${[].concat(v.problem || []).join('; ')}`);
  } catch (error) {
    chain = el('p', { class: 'muted', id: 'chain' }, `审计链校验需平台权限 Verifying the chain needs a platform token (${error.status || ''}).`);
  }
  const input = el('input', { id: 'audit-patient', placeholder: 'Patient/<id>', size: 30 });
  const out = el('div', {});
  const search = async (e) => {
    e.preventDefault();
    const ref = input.value.startsWith('Patient/') ? input.value : `Patient/${input.value}`;
    const events = entries(await fhir(`AuditEvent?patient=${encodeURIComponent(ref)}&_count=50`), 'AuditEvent');
    events.sort((a, b) => String(b.recorded).localeCompare(String(a.recorded)));
    out.replaceChildren(table('audit-events', ['时间 When', '谁 Who', '做了什么 What', '结果 Outcome'], events.map((e) => [
      String(e.recorded).replace('T', ' ').slice(0, 19),
      (e.agent || []).map((a) => (a.who || {}).reference || (a.who || {}).display).filter(Boolean).join(', '),
      [(e.type || {}).code === 'rest' ? 'REST' : ((e.type || {}).code || ''), ...(e.subtype || []).filter((s) => s.system !== ITEM).map((s) => s.code)].join(' '),
      e.outcome === '0' ? '成功 ok' : `失败 ${e.outcome}`])));
  };
  body.replaceChildren(chain, el('h3', {}, '患者数据的访问记录 Recent access to a patient\'s data'),
    el('form', { class: 'search', onsubmit: search }, input, el('button', { type: 'submit', id: 'audit-find' }, '查询 Search')), out);
}
