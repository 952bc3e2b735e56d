// The console's shell: who is logged in (SMART), which views they have, and the hash routes
// (#doctor[/<patient>], #admin[/<tab>], #patient).
import { el, session, setSession } from './api.js';
import { complete, contextHash, discover, login, logout, openLaunch } from './smart.js';
import { doctorView } from './doctor.js';
import { adminView } from './admin.js';
import { patientView } from './patient.js';

const VIEWS = {
  doctor: ['医生 Doctor', doctorView],
  admin: ['管理 Administrator', adminView],
  patient: ['患者 Patient', patientView],
};

function rolesOf(config, s) {
  if (!config) return Object.keys(VIEWS); // authentication off: every view, acting for a chosen hospital
  if (!s) return [];
  if (s.role === 'patient') return ['patient'];
  if (s.role === 'admin' || s.role === 'platform') return ['admin'];
  return ['doctor'];
}

function header(config, s, roles) {
  const nav = document.getElementById('roles');
  nav.replaceChildren(...roles.map((r) => el('a', { href: `#${r}`, id: `role-${r}` }, VIEWS[r][0])));
  const who = document.getElementById('who');
  if (!config) {
    who.replaceChildren(el('span', { class: 'muted' }, '未开启认证 Authentication off'));
  } else if (s) {
    const identity = s.role === 'patient' ? `患者 Patient/${s.patient}` : (s.fhirUser || s.organization || '');
    who.replaceChildren(el('span', { id: 'identity' }, identity),
      el('button', { type: 'button', class: 'link', onclick: logout }, '退出 Log out'));
  } else {
    who.replaceChildren();
  }
}

async function route(config) {
  const s = session();
  const roles = rolesOf(config, s);
  header(config, s, roles);
  const main = document.getElementById('main');
  if (config && !s) {
    main.replaceChildren(el('section', { class: 'card' },
      el('h2', {}, '请登录 Please log in'),
      el('p', {}, '本控制台是SMART on FHIR应用，使用机构的身份认证登录。 This console is a SMART on FHIR app: log in with your organization\'s identity provider.'),
      el('button', { type: 'button', id: 'login', onclick: () => login(config, null) }, '登录 Log in')));
    return;
  }
  const [name, ...rest] = location.hash.replace(/^#/, '').split('/');
  const role = roles.includes(name) ? name : roles[0];
  for (const link of document.querySelectorAll('#roles a')) link.classList.toggle('active', link.id === `role-${role}`);
  main.replaceChildren(el('p', { class: 'muted' }, '加载中… Loading…'));
  try {
    await VIEWS[role][1](main, { config, session: s, args: rest.map(decodeURIComponent) });
  } catch (error) {
    if (error.status === 401 && config) { // the token expired or was revoked: log in again
      setSession(null);
      await route(config);
      return;
    }
    main.replaceChildren(el('p', { class: 'error' }, `出错了 Something failed: ${error.message}`));
  }
}

async function start() {
  const url = new URL(location.href);
  let config = null;
  try {
    config = await discover();
    if (url.searchParams.get('code')) await complete(config, url);
    else if (url.pathname.endsWith('/launch')) {
      const launch = url.searchParams.get('launch') || '';
      if (config) {
        setSession(null);
        await login(config, launch); // EHR launch: on to the authorization server, back with the context
        return;
      }
      history.replaceState(null, '', `/console/${openLaunch(launch)}`);
    } else if (config && session() && !location.hash) {
      history.replaceState(null, '', `/console/${contextHash(session())}`);
    }
  } catch (error) {
    document.getElementById('main').replaceChildren(el('p', { class: 'error' }, error.message));
    return;
  }
  window.addEventListener('hashchange', () => route(config));
  await route(config);
}

start();
