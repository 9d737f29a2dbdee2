// Search: query and filters, highlighted hits, paging by the server's page tokens, saved searches (localStorage).
// The last query of the tab is kept in sessionStorage so a reload shows it again.
import { api, compact } from "./api.js";
import { append, el, errorNode, fragmentNode, levelBadge, link, safeLink, when } from "./dom.js";
import { t } from "./i18n.js";
import { histogramChart, timeZone } from "./view_dashboard.js";

const SAVED_KEY = "qingfeng.savedSearches";
const LAST_KEY = "qingfeng.lastSearch";
const FIELDS = ["kind", "q", "order", "region_code", "source_id", "event_id", "min_relevance", "created_after",
  "created_before", "media_only", "min_level", "rising_only"];

function input(name, type, placeholderKey) {
  const node = el("input");
  node.name = name;
  node.type = type;
  if (placeholderKey) {
    node.placeholder = t(placeholderKey);
    node.setAttribute("aria-label", t(placeholderKey));
  }
  return node;
}

function select(name, options) {
  const node = el("select");
  node.name = name;
  for (const [value, key] of options) {
    const option = el("option", null, t(key));
    option.value = value;
    node.appendChild(option);
  }
  return node;
}

function checkbox(name, key) {
  const label = el("label", "check");
  const box = input(name, "checkbox");
  return append(label, box, ` ${t(key)}`);
}

function form() {
  const f = el("form", "search-form");
  f.setAttribute("role", "search");
  const q = input("q", "search", "search.q");
  q.id = "q";
  const go = el("button", null, t("search.go"));
  go.type = "submit";
  const save = el("button", "secondary", t("search.save"));
  save.type = "button";
  save.id = "save-search";
  const row1 = append(el("div", "row"),
    select("kind", [["posts", "search.posts"], ["events", "search.events"]]), q,
    select("order", [["relevance", "search.order.relevance"], ["newest", "search.order.newest"], ["reach", "search.order.reach"]]),
    go, save);
  const after = input("created_after", "datetime-local");
  const before = input("created_before", "datetime-local");
  after.title = t("search.after");
  before.title = t("search.before");
  const relevance = input("min_relevance", "number", "search.relevance");
  relevance.step = "0.1";
  relevance.min = "0";
  relevance.max = "1";
  const row2 = append(el("div", "row filters"),
    input("region_code", "text", "search.region"), input("source_id", "text", "search.source"),
    input("event_id", "text", "search.event"), relevance,
    append(el("label"), `${t("search.after")} `, after), append(el("label"), `${t("search.before")} `, before),
    checkbox("media_only", "search.media"),
    select("min_level", [["", "search.level"], ["blue", "level.WARNING_LEVEL_BLUE"], ["yellow", "level.WARNING_LEVEL_YELLOW"],
      ["orange", "level.WARNING_LEVEL_ORANGE"], ["red", "level.WARNING_LEVEL_RED"]]),
    checkbox("rising_only", "search.rising"));
  return append(f, row1, row2);
}

function readForm(f) {
  const data = {};
  for (const name of FIELDS) {
    const field = f.elements[name];
    data[name] = field.type === "checkbox" ? field.checked : field.value.trim();
  }
  return data;
}

function writeForm(f, data) {
  for (const name of FIELDS) {
    const field = f.elements[name];
    if (data[name] === undefined) continue;
    if (field.type === "checkbox") field.checked = Boolean(data[name]);
    else field.value = data[name];
  }
}

function toIso(local) {
  return local ? new Date(local).toISOString() : "";
}

function params(query) {
  const common = { q: query.q, order: query.order, page_size: "20" };
  if (query.kind === "events") {
    return compact({ ...common, region_code: query.region_code, min_level: query.min_level, rising_only: query.rising_only && "true" });
  }
  return compact({
    ...common, region_code: query.region_code, source_id: query.source_id, event_id: query.event_id,
    min_relevance: query.min_relevance, created_after: toIso(query.created_after), created_before: toIso(query.created_before),
    media_only: query.media_only && "true",
  });
}

function highlighted(hit, item, fallback) {
  const fragments = (hit.highlights || []).filter((h) => h.field !== "title").flatMap((h) => h.fragments || []);
  if (fragments.length) fragments.forEach((f) => item.appendChild(fragmentNode(f)));
  else if (fallback) item.appendChild(el("p", "fragment", fallback.slice(0, 160)));
}

function titleNode(hit, fallback, href) {
  const h3 = el("h3");
  const titled = (hit.highlights || []).find((h) => h.field === "title");
  const target = href ? link(href, "") : h3;
  if (titled && titled.fragments && titled.fragments.length) target.appendChild(fragmentNode(titled.fragments[0], "span"));
  else target.textContent = fallback;
  if (href) h3.appendChild(target);
  return h3;
}

function postItem(hit) {
  const post = hit.post || {};
  const item = el("li", "hit");
  item.dataset.id = post.id || "";
  const text = post.text_simplified || post.text || "";
  item.appendChild(titleNode(hit, post.title || text.slice(0, 40) || post.id));
  const meta = el("div", "meta");
  const score = hit.score ? ` · score ${Number(hit.score).toFixed(2)}` : "";
  meta.appendChild(el("span", null, [post.platform, post.author && post.author.name, when(post.created_at), `↻${post.reposts || 0}`]
    .filter(Boolean).join(" · ") + score + " · "));
  meta.appendChild(post.url ? safeLink(post.url, t("search.original")) : el("span", null, post.id));
  item.appendChild(meta);
  highlighted(hit, item, text);
  return item;
}

function eventItem(hit) {
  const event = hit.event || {};
  const item = el("li", "hit");
  item.appendChild(titleNode(hit, event.title || event.id, `#/event/${encodeURIComponent(event.id)}`));
  const meta = append(el("div", "meta"), levelBadge(event.level, event.grade && event.grade.label),
    ` ${t("event.posts")} ${event.post_count || 0} · ${when(event.last_seen_at)}${event.rising ? " · ▲" : ""}`);
  item.appendChild(meta);
  highlighted(hit, item, (event.keywords || []).join(" "));
  return item;
}

function savedList(f, run) {
  const box = el("div", "saved");
  const draw = () => {
    const saved = JSON.parse(localStorage.getItem(SAVED_KEY) || "[]");
    box.replaceChildren(el("h3", null, t("search.saved")));
    const list = el("ul");
    saved.forEach((entry, i) => {
      const open = el("button", "link", `${entry.q || "*"} (${entry.kind}${entry.region_code ? " " + entry.region_code : ""})`);
      open.type = "button";
      open.addEventListener("click", () => { writeForm(f, entry); run(); });
      const del = el("button", "link small", t("search.delete"));
      del.type = "button";
      del.addEventListener("click", () => {
        saved.splice(i, 1);
        localStorage.setItem(SAVED_KEY, JSON.stringify(saved));
        draw();
      });
      list.appendChild(append(el("li"), open, " ", del));
    });
    box.appendChild(saved.length ? list : el("p", "help", "—"));
  };
  draw();
  return { box, draw };
}

export async function render(view, _id, query) {
  view.classList.add("search-page");
  const f = form();
  const status = el("p", "status");
  status.id = "search-status";
  const trend = el("div", "search-trend");
  const results = el("ol", "results");
  results.id = "results";
  const pager = el("div", "pager");
  const more = el("button", null, t("search.more"));
  more.type = "button";
  more.id = "more";
  more.hidden = true;
  const pageLabel = el("span", "meta");
  pageLabel.id = "page-label";
  append(pager, pageLabel, " ", more);
  let tokens = [""];
  let current = null;

  async function run(page = 0) {
    if (page === 0) {
      current = readForm(f);
      sessionStorage.setItem(LAST_KEY, JSON.stringify(current));
      tokens = [""];
    }
    status.className = "status";
    status.textContent = t("loading");
    try {
      // The first page of a post search also asks for the histogram of every match (one chart above the hits).
      const charts = page === 0 && current.kind === "posts" ? { aggs: "true", interval: "1d", time_zone: timeZone() } : {};
      const body = await api.get(`/api/search/${current.kind}`, { ...params(current), ...charts, ...(tokens[page] ? { page_token: tokens[page] } : {}) });
      if (page === 0) {
        const histogram = (body.aggregations || {}).histogram || [];
        const worth = histogram.length > 1 && histogram.some((b) => Number(b.count || 0) > 0);
        trend.replaceChildren(...(worth ? [histogramChart(histogram, t("event.posts"))] : []));
      }
      results.replaceChildren(...(body.hits || []).map((hit) => (current.kind === "posts" ? postItem(hit) : eventItem(hit))));
      status.textContent = t("search.total", { n: `${body.total || 0}${body.total_is_lower_bound ? "+" : ""}` });
      tokens[page + 1] = body.next_page_token || "";
      // A short page is the last one, whatever token came with it.
      more.hidden = !body.next_page_token || (body.hits || []).length < Number(params(current).page_size);
      more.onclick = () => run(page + 1);
      pageLabel.textContent = t("search.page", { n: page + 1 });
    } catch (err) {
      results.replaceChildren();
      status.replaceChildren(errorNode(err));
      more.hidden = true;
    }
  }

  const saved = savedList(f, () => run(0));
  f.addEventListener("submit", (e) => { e.preventDefault(); run(0); });
  f.querySelector("#save-search").addEventListener("click", () => {
    const list = JSON.parse(localStorage.getItem(SAVED_KEY) || "[]");
    list.unshift(readForm(f));
    localStorage.setItem(SAVED_KEY, JSON.stringify(list.slice(0, 20)));
    saved.draw();
  });
  append(view, append(el("section", "panel"), f, status, trend, results, pager), append(el("aside", "panel"), saved.box));
  const last = query.get("q") !== null ? { kind: "posts", q: query.get("q") } : JSON.parse(sessionStorage.getItem(LAST_KEY) || "null");
  if (last) {
    writeForm(f, last);
    if (last.q) run(0);
  }
}
