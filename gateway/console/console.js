// Qingfeng search console: calls /api/search/{posts,events} with the bearer token kept in sessionStorage
// (gone when the tab closes). Hits are built with DOM nodes and textContent only; highlight fragments are parsed
// into an inert document and only their <em> tags become <mark>, so indexed text can never inject markup.
"use strict";

const TOKEN_KEY = "qingfeng.token";
const $ = (id) => document.getElementById(id);
let nextToken = "";
let lastQuery = null;

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function showTokenState() {
  $("token-state").textContent = token() ? "已保存 saved" : "未设置 not set";
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// A fragment is HTML-escaped text with <em>…</em> around matches; rebuild it as text nodes and <mark> elements.
function fragmentNode(fragment) {
  const doc = new DOMParser().parseFromString(`<p>${fragment}</p>`, "text/html");
  const out = el("p", "fragment");
  for (const child of doc.body.firstChild.childNodes) {
    if (child.nodeType === Node.ELEMENT_NODE && child.nodeName === "EM") {
      out.appendChild(el("mark", null, child.textContent));
    } else {
      out.appendChild(document.createTextNode(child.textContent));
    }
  }
  return out;
}

function safeLink(url, text) {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") {
      const a = el("a", null, text);
      a.href = parsed.href;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      return a;
    }
  } catch (_) {
    // not a URL: shown as text below
  }
  return el("span", null, text);
}

function when(value) {
  return value ? new Date(value).toLocaleString("zh-CN", { hour12: false }) : "";
}

function highlights(hit, item, fallback) {
  const fragments = (hit.highlights || []).filter((h) => h.field !== "title").flatMap((h) => h.fragments || []);
  if (fragments.length) {
    fragments.forEach((f) => item.appendChild(fragmentNode(f)));
  } else if (fallback) {
    item.appendChild(el("p", "fragment", fallback.slice(0, 160)));
  }
}

function titleNode(hit, fallback) {
  const h2 = el("h2");
  const titled = (hit.highlights || []).find((h) => h.field === "title");
  if (titled && titled.fragments && titled.fragments.length) {
    h2.appendChild(fragmentNode(titled.fragments[0]));
  } else {
    h2.textContent = fallback;
  }
  return h2;
}

function postItem(hit) {
  const post = hit.post || {};
  const item = el("li");
  const text = post.text_simplified || post.text || "";
  item.appendChild(titleNode(hit, post.title || text.slice(0, 40) || post.id));
  const meta = el("div", "meta");
  meta.appendChild(el("span", null, [post.platform, post.author && post.author.name, when(post.created_at)]
    .filter(Boolean).join(" · ") + " · "));
  meta.appendChild(post.url ? safeLink(post.url, "原文") : el("span", null, post.id));
  item.appendChild(meta);
  highlights(hit, item, text);
  return item;
}

function eventItem(hit) {
  const event = hit.event || {};
  const item = el("li");
  item.appendChild(titleNode(hit, event.title || event.id));
  const meta = el("div", "meta");
  if (event.level) meta.appendChild(el("span", `level ${event.level}`, (event.grade && event.grade.label) || event.level));
  meta.appendChild(el("span", null, ` 帖文 ${event.post_count || 0} · 最近 ${when(event.last_seen_at)}` +
    (event.rising ? " · 上升" : "")));
  item.appendChild(meta);
  highlights(hit, item, (event.keywords || []).join(" "));
  return item;
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function search(append) {
  if (!token()) {
    setStatus("请先保存访问令牌 (save a token first).", true);
    return;
  }
  const query = append ? lastQuery : {
    kind: $("kind").value,
    q: $("q").value.trim(),
    order: $("order").value,
    region_code: $("region").value.trim(),
  };
  lastQuery = query;
  const params = new URLSearchParams({ q: query.q, order: query.order, page_size: "20" });
  if (query.region_code) params.set("region_code", query.region_code);
  if (append && nextToken) params.set("page_token", nextToken);
  setStatus("检索中…", false);
  let response;
  try {
    response = await fetch(`/api/search/${query.kind}?${params}`, {
      headers: { Authorization: `Bearer ${token()}` },
      cache: "no-store",
    });
  } catch (err) {
    setStatus(`网络错误 network error: ${err}`, true);
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || response.statusText;
    const hint = response.status === 401 ? "令牌无效或缺失 " : response.status === 403 ? "无权检索 " : "";
    setStatus(`${hint}(${response.status}) ${message}`, true);
    return;
  }
  const list = $("results");
  if (!append) list.replaceChildren();
  for (const hit of body.hits || []) {
    list.appendChild(query.kind === "posts" ? postItem(hit) : eventItem(hit));
  }
  const total = Number(body.total || 0);
  const took = body.took ? ` · ${body.took}` : "";
  setStatus(`共 ${total}${body.total_is_lower_bound ? "+" : ""} 条结果${took}`, false);
  nextToken = body.next_page_token || "";
  $("more").hidden = !nextToken;
}

document.addEventListener("DOMContentLoaded", () => {
  showTokenState();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showTokenState();
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    nextToken = "";
    search(false);
  });
  $("more").addEventListener("click", () => search(true));
});
