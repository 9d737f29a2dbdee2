// Event page: the spread chart, level and every reason, the level history with every grade's reasons, every
// criterion of the policy, key posts, its case.
import { api } from "./api.js";
import { barLine, chartBox } from "./charts.js";
import { append, el, enumText, fill, levelBadge, link, section, when } from "./dom.js";
import { t } from "./i18n.js";
import { caseClocks, histogramChart, timeZone } from "./view_dashboard.js";

function windowName(duration) {
  const seconds = parseFloat(duration || "0");
  if (!seconds) return t("event.total");
  return seconds >= 3600 ? `${Math.round(seconds / 3600)}h` : `${Math.round(seconds / 60)}min`;
}

function metricsChart(metrics) {
  const categories = metrics.map((m) => windowName(m.window));
  const pick = (field) => metrics.map((m) => Number(m[field] || 0));
  return chartBox(barLine({
    categories,
    series: [
      { name: t("event.posts"), type: "bar", data: pick("posts") },
      { name: "reposts", type: "bar", data: pick("reposts") },
      { name: "authors", type: "bar", data: pick("distinct_authors") },
      { name: "velocity /h", type: "line", data: metrics.map((m) => Number(m.velocity || 0).toFixed(1)) },
    ],
  }), "metrics");
}

function reasonList(reasons) {
  const list = el("ul", "reasons");
  for (const r of reasons || []) {
    append(list, append(el("li"), levelBadge(r.level), " ", el("span", null, r.message || `${r.criterion} ${r.value} / ${r.threshold}`)));
  }
  return list;
}

function history(event) {
  const grade = event.grade || {};
  const rows = el("dl", "facts");
  const fact = (key, value) => value && append(rows, el("dt", null, t(key)), append(el("dd"), value));
  fact("event.previous", event.previous_level ? levelBadge(event.previous_level) : null);
  fact("event.graded", when(grade.graded_at));
  fact("event.policy", grade.policy_version);
  fact("event.hold", when(grade.hold_until));
  if (grade.override) fact("event.override", `${t(`level.${grade.override.level}`)} · ${grade.override.reason || ""}`);
  const now = append(el("p", "grade"), levelBadge(event.level, grade.label), event.rising ? el("span", "rising", ` ▲ ${t("dash.rising")}`) : null);
  return [now, rows, el("h3", null, t("event.reasons")), reasonList(grade.reasons)];
}

// The level history (GraderService/ListEventGrades): each change newest first, with when (event time), from and to
// which level, whether the event was rising, and the reasons (criteria that fired, values and thresholds).
function changes(reply) {
  const all = (reply.changes || []).slice().reverse();
  if (!all.length) return el("p", "help", t("event.nochanges"));
  const list = el("ol", "level-history");
  for (const change of all) {
    const grade = change.grade || {};
    const item = el("li", `level-change to-${change.to_level || "WARNING_LEVEL_UNSPECIFIED"}`);  // the timeline dot's colour
    item.dataset.sequence = change.sequence || "";
    const line = append(el("p", "change"), el("span", "meta", `${when(grade.graded_at || change.emitted_at)} `),
      levelBadge(change.from_level), " → ", levelBadge(change.to_level, grade.label),
      change.rising ? el("span", "rising", ` ▲ ${t("event.risingat")}`) : null,
      grade.policy_version ? el("span", "meta", ` · ${t("event.policy")} ${grade.policy_version}`) : null);
    append(item, line, reasonList(change.reasons && change.reasons.length ? change.reasons : grade.reasons));
    list.appendChild(item);
  }
  return list;
}

function explain(reply) {
  const table = el("table", "criteria");
  for (const ev of reply.evaluations || []) {
    const r = ev.reason || {};
    const row = el("tr", ev.matched ? "matched" : "unmatched");
    append(row, append(el("td"), levelBadge(r.level)), el("td", null, r.message || r.criterion),
      el("td", null, ev.matched ? `✔ ${t("event.matched")}` : `✗ ${t("event.unmatched")}`));
    table.appendChild(row);
  }
  return [reply.summary ? append(el("p", "summary"), el("strong", null, `${t("event.summary")}: `), reply.summary) : null, table];
}

// The event's posts by reach, with the charts of all of them (hourly histogram, sources, regions, authors).
async function eventPosts(event) {
  return api.get("/api/search/posts", {
    event_id: event.id, order: "reach", page_size: "50", aggs: "true", interval: "1h", time_zone: timeZone(), top: "8",
  });
}

function counts(buckets) {
  return (buckets || []).map((b) => `${b.label || b.key} ${b.count}`).join(" · ") || "—";
}

function keyPosts(reply) {
  const hits = reply.hits || [];
  const charts = reply.aggregations || {};
  const list = el("ol", "posts");
  for (const hit of hits.slice(0, 8)) {
    const p = hit.post || {};
    const author = p.author || {};
    append(list, append(el("li"), el("span", "meta", `${author.name || author.id || ""} (${author.followers || 0}) · ${when(p.created_at)} · ↻${p.reposts || 0} `),
      el("span", null, (p.text_simplified || p.text || "").slice(0, 140))));
  }
  const authors = new Map();
  for (const hit of hits) {
    const p = hit.post || {};
    if (p.author) authors.set(p.author.name || p.author.id, Number(p.author.followers || 0));
  }
  const top = [...authors.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5);
  return [list,
    el("h3", null, t("event.authors")), el("p", null, top.map(([name, n]) => `${name} (${n})`).join(" · ") || "—"),
    el("h3", null, t("event.sources")), el("p", null, counts(charts.source_kinds)),
    el("h3", null, t("event.regionsof")), el("p", null, counts(charts.regions))];
}

export async function render(view, id) {
  view.classList.add("event-page");
  let event;
  const head = el("section", "panel head");
  view.appendChild(head);
  await fill(head, async () => {
    event = (await api.get(`/api/events/${encodeURIComponent(id)}`)).event || {};
    const facts = el("p", "meta", `${t("event.posts")} ${event.post_count || 0} · ${t("event.first")} ${when(event.first_seen_at)} · ${t("event.last")} ${when(event.last_seen_at)}`);
    return [append(el("h2"), levelBadge(event.level, event.grade && event.grade.label), " ", event.title || event.id), facts,
      el("p", null, `${t("event.keywords")}: ${(event.keywords || []).join("、")}`),
      el("p", null, `${t("event.regions")}: ${(event.regions || []).map((r) => r.name || r.code).join("、") || "—"}`)];
  });
  if (!event) return;
  const chart = section("event.chart", "chart-panel");
  const grade = section("event.history", "grade-panel");
  const levels = section("event.changes", "history-panel");
  const criteria = section("event.explain", "explain-panel");
  const posts = section("event.keyposts", "posts-panel");
  const caseBox = section("event.case", "case-panel");
  append(view, chart, grade, levels, criteria, posts, caseBox);
  const found = eventPosts(event);
  fill(chart, async () => {
    let histogram = [];
    try {
      histogram = ((await found).aggregations || {}).histogram || [];
    } catch (_) {
      // no search grant or search down: the metrics chart alone (the posts panel shows the error)
    }
    return [el("h3", null, t("event.metrics")), metricsChart(event.metrics || []),
      histogram.length ? el("h3", null, t("event.timeline")) : null, histogram.length ? histogramChart(histogram, t("event.posts")) : null];
  });
  fill(grade, async () => history(event));
  fill(levels, async () => changes(await api.get(`/api/events/${encodeURIComponent(id)}/grades`)));
  fill(criteria, async () => explain(await api.get(`/api/events/${encodeURIComponent(id)}/explain`)));
  fill(posts, async () => keyPosts(await found));
  fill(caseBox, async () => {
    const reply = await api.get("/api/cases", { event_id: id });
    const c = (reply.cases || [])[0];
    if (!c) return el("p", "help", t("event.nocase"));
    return [append(el("p"), levelBadge(c.level), " ", link(`#/cases/${encodeURIComponent(c.id)}`, c.title || c.id),
      el("span", "meta", ` ${enumText(c.status, "CASE_STATUS_")}`)), caseClocks(c)];
  });
}
