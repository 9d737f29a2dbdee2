// Qingfeng console: sign-in (token exchanged for an HttpOnly session cookie), hash routes, language and wall mode.
// Views: #/dashboard, #/event/<id>, #/search?q=, #/cases[/<id>], #/publications. Everything the page shows comes
// from the gateway's HTTP/JSON API (gateway/openapi.yaml); the gateway, not this page, decides what a role may do.
// The search view keeps the tab's last query in sessionStorage; saved searches and the language in localStorage.
import { api, setCsrf } from "./api.js";
import { disposeCharts, resizeCharts } from "./charts.js";
import { el, errorNode, tickClock } from "./dom.js";
import { currentLang, setLang, t, translateStatic } from "./i18n.js";
import * as cases from "./view_cases.js";
import * as dashboard from "./view_dashboard.js";
import * as eventPage from "./view_event.js";
import * as publications from "./view_publications.js";
import * as search from "./view_search.js";

const VIEWS = { dashboard, event: eventPage, search, cases, publications };
const $ = (id) => document.getElementById(id);
let session = null;

function showSignedIn(signedIn) {
  $("sign-in").hidden = signedIn;
  $("nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  $("view").hidden = !signedIn;
  const who = session && session.identity;
  $("who").textContent = signedIn && who ? `${who.name} · ${who.agency}` : "";
}

async function route() {
  if (!session) return;
  const [path, queryString] = (location.hash.replace(/^#\/?/, "") || "dashboard").split("?");
  const [name, ...rest] = path.split("/");
  const view = VIEWS[name] ? name : "dashboard";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === `#/${view}`);
  disposeCharts();
  const main = $("view");
  main.replaceChildren();
  main.className = "";
  main.dataset.view = view;
  try {
    await VIEWS[view].render(main, rest.length ? decodeURIComponent(rest.join("/")) : "", new URLSearchParams(queryString || ""), session);
  } catch (err) {
    if (err && err.status === 401) return signedOut();
    main.appendChild(errorNode(err));
  }
}

function signedOut() {
  session = null;
  setCsrf("");
  showSignedIn(false);
  $("view").replaceChildren();
}

function signedIn(body) {
  session = body;
  setCsrf(body.csrf_token);
  showSignedIn(true);
  route();
}

async function start() {
  setLang(currentLang());
  translateStatic();
  $("lang").textContent = currentLang() === "en" ? "中文" : "English";
  if (localStorage.getItem("qingfeng.wall") === "1" || new URLSearchParams(location.search).get("wall") === "1") {
    document.body.classList.add("wall");
  }
  $("sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = $("sign-in-status");
    status.textContent = "";
    try {
      const body = await api.post("/api/session", { token: $("token").value.trim() });
      $("token").value = "";
      signedIn(body);
    } catch (err) {
      status.replaceChildren(el("span", null, `${t("signin.failed")}: `), errorNode(err));
    }
  });
  $("sign-out").addEventListener("click", async () => {
    try {
      await api.del("/api/session");
    } finally {
      signedOut();
    }
  });
  $("lang").addEventListener("click", () => {
    setLang(currentLang() === "en" ? "zh" : "en");
    translateStatic();
    $("lang").textContent = currentLang() === "en" ? "中文" : "English";
    route();
  });
  $("wall").addEventListener("click", () => {
    const on = document.body.classList.toggle("wall");
    localStorage.setItem("qingfeng.wall", on ? "1" : "0");
    requestAnimationFrame(resizeCharts);
  });
  window.addEventListener("hashchange", route);
  window.addEventListener("qf-signed-out", () => session && signedOut());
  // A wall screen is left alone: its dashboard redraws itself every minute.
  setInterval(() => {
    if (session && document.body.classList.contains("wall") && $("view").dataset.view === "dashboard") route();
  }, 60000);
  window.addEventListener("resize", resizeCharts);
  setInterval(() => document.querySelectorAll(".clock[data-deadline]").forEach(tickClock), 1000);
  try {
    signedIn(await api.get("/api/session"));
  } catch (_) {
    signedOut();
  }
}

start();
