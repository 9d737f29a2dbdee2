// DOM helpers: every text goes in through textContent; highlight fragments are parsed into an inert document and
// only their <em> tags become <mark>, so indexed text can never inject markup.
import { t } from "./i18n.js";

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

export function append(parent, ...children) {
  for (const child of children) if (child) parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  return parent;
}

export function section(titleKey, className) {
  const box = el("section", `panel ${className || ""}`);
  box.appendChild(el("h2", null, t(titleKey)));
  return box;
}

export function fragmentNode(fragment, tag = "p") {
  const doc = new DOMParser().parseFromString(`<p>${fragment}</p>`, "text/html");
  const out = el(tag, "fragment");
  for (const child of doc.body.firstChild.childNodes) {
    if (child.nodeType === Node.ELEMENT_NODE && child.nodeName === "EM") {
      out.appendChild(el("mark", null, child.textContent));
    } else {
      out.appendChild(document.createTextNode(child.textContent));
    }
  }
  return out;
}

export function link(href, text, className) {
  const a = el("a", className, text);
  a.href = href;
  return a;
}

export function safeLink(url, text) {
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
    // not a URL: shown as text
  }
  return el("span", null, text);
}

export function levelBadge(level, label) {
  const value = level || "WARNING_LEVEL_UNSPECIFIED";
  return el("span", `level ${value}`, label || t(`level.${value}`));
}

export function when(value) {
  if (!value) return "";
  return new Date(value).toLocaleString(document.documentElement.lang === "en" ? "en-GB" : "zh-CN", { hour12: false });
}

// An enum name as the page shows it: translated when the dictionary has it ("status.<NAME>"), else its words.
export function enumText(value, prefix) {
  if (!value) return "";
  const translated = t(`status.${value}`);
  return translated !== `status.${value}` ? translated : String(value).replace(prefix, "").toLowerCase().replaceAll("_", " ");
}

// A clock counting down to `deadline` (or showing it was met at `doneAt`); console.js ticks every .clock each second.
export function clock(labelKey, deadline, doneAt) {
  const box = el("span", "clock");
  box.appendChild(el("span", "clock-label", `${t(labelKey)} `));
  const value = el("span", "clock-value");
  box.appendChild(value);
  if (doneAt) {
    box.classList.add("done");
    value.textContent = `${t("clock.done")} ${when(doneAt)}`;
  } else if (deadline) {
    box.dataset.deadline = deadline;
    tickClock(box);
  } else {
    return null;
  }
  return box;
}

export function tickClock(box) {
  const left = Date.parse(box.dataset.deadline) - Date.now();
  const abs = Math.abs(left);
  const h = Math.floor(abs / 3600000);
  const m = Math.floor((abs % 3600000) / 60000);
  const s = Math.floor((abs % 60000) / 1000);
  const text = `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
  box.classList.toggle("over", left < 0);
  box.lastChild.textContent = left < 0 ? `${t("clock.over")} ${text}` : `${t("clock.left")} ${text}`;
}

export function errorNode(err) {
  const status = err && err.status;
  const key = [401, 403, 404, 501, 503].includes(status) ? `err.${status}` : "err.other";
  const box = el("p", `error status-${status || 0}`);
  box.textContent = `${t(key)} (${status || "—"}${err && err.code ? " " + err.code : ""})`;
  if (err && err.message) box.title = err.message;
  return box;
}

// Fill `box` with what `load` renders, or with the error the gateway answered: one part failing never breaks the page.
export async function fill(box, load) {
  const body = el("div", "panel-body", t("loading"));
  box.appendChild(body);
  try {
    const content = await load();
    body.replaceChildren(...(Array.isArray(content) ? content : [content]).filter(Boolean));
  } catch (err) {
    body.replaceChildren(errorNode(err));
    if (!(err && err.status)) console.error(err);
  }
}
