// Dashboard: today's events by level (rising flagged), the posts trend, open cases with their clocks, overdue tasks.
import { api } from "./api.js";
import { barLine, chartBox, LEVEL_COLORS } from "./charts.js";
import { append, clock, el, enumText, fill, levelBadge, link, section, when } from "./dom.js";
import { t } from "./i18n.js";

const LEVELS = ["WARNING_LEVEL_RED", "WARNING_LEVEL_ORANGE", "WARNING_LEVEL_YELLOW", "WARNING_LEVEL_BLUE"];
const OPEN = ["CASE_STATUS_AWAITING_ACKNOWLEDGEMENT", "CASE_STATUS_ACKNOWLEDGED", "CASE_STATUS_IN_DISPOSITION", "CASE_STATUS_VERIFYING"];

function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

async function todaysEvents() {
  const today = await api.get("/api/events", { "active.start_time": startOfToday(), page_size: "500" });
  if ((today.events || []).length) return { events: today.events, today: true };
  const latest = await api.get("/api/events", { page_size: "100" });
  return { events: latest.events || [], today: false };
}

async function lastDayEvents() {
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  return (await api.get("/api/events", { "active.start_time": since, page_size: "500" })).events || [];
}

function levelTiles(events) {
  const tiles = el("div", "tiles");
  for (const level of LEVELS) {
    const of = events.filter((e) => e.level === level);
    const rising = of.filter((e) => e.rising).length;
    const tile = el("div", `tile ${level}`);
    append(tile, el("div", "tile-label", t(`level.${level}`)), el("div", "tile-count", of.length));
    if (rising) tile.appendChild(el("div", "tile-rising", `▲ ${rising} ${t("dash.rising")}`));
    tiles.appendChild(tile);
  }
  return tiles;
}

export function eventRow(event) {
  const row = el("li", "event-row");
  append(row, levelBadge(event.level, event.grade && event.grade.label), " ",
    link(`#/event/${encodeURIComponent(event.id)}`, event.title || event.id),
    el("span", "meta", ` ${t("event.posts")} ${event.post_count || 0} · ${when(event.last_seen_at)}`));
  if (event.rising) row.appendChild(el("span", "rising", ` ▲ ${t("dash.rising")}`));
  return row;
}

export function timeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
}

// Posts per hour over the last 24 h from the search's date histogram (every matching post, not a page of them).
export function histogramChart(buckets, name) {
  const categories = buckets.map((b) => when(b.start_time).slice(0, -3));
  const series = [{ name, type: "line", areaStyle: {}, data: buckets.map((b) => Number(b.count || 0)) }];
  return chartBox(barLine({ categories, series, yName: t("event.posts") }), "trend");
}

async function trend() {
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  try {
    const reply = await api.get("/api/search/posts", {
      aggs: "true", interval: "1h", time_zone: timeZone(), created_after: since, page_size: "1",
    });
    const buckets = (reply.aggregations || {}).histogram || [];
    if (buckets.length) return [histogramChart(buckets, t("event.posts")), el("p", "help", t("dash.trend.note"))];
  } catch (err) {
    if (err.status !== 400 && err.status !== 403) throw err;
  }
  return eventsTrend(await lastDayEvents());
}

function eventsTrend(events) {
  // Without search: hourly buckets of first_seen_at, posts summed per level (the events' own metrics).
  const buckets = new Map();
  for (const e of events) {
    if (!e.first_seen_at) continue;
    const d = new Date(e.first_seen_at);
    const key = `${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")} ${String(d.getHours()).padStart(2, "0")}:00`;
    const row = buckets.get(key) || Object.fromEntries(LEVELS.map((l) => [l, 0]));
    row[e.level] = (row[e.level] || 0) + Number(e.post_count || 0);
    buckets.set(key, row);
  }
  const categories = [...buckets.keys()].sort();
  const series = LEVELS.map((level) => ({
    name: t(`level.${level}`),
    type: "bar",
    stack: "posts",
    itemStyle: { color: LEVEL_COLORS[level] },
    data: categories.map((c) => buckets.get(c)[level] || 0),
  }));
  return [chartBox(barLine({ categories, series, yName: t("event.posts") }), "trend"), el("p", "help", t("dash.trend.events"))];
}

export function caseClocks(c) {
  const box = el("div", "clocks");
  const ack = c.acknowledged_at ? clock("case.ackdue", null, c.acknowledged_at) : clock("case.ackdue", c.ack_deadline);
  append(box, ack, clock("case.golden", c.first_response_due_at, c.first_response_at),
    clock("case.refute", c.refutation_due_at, c.refuted_at));
  return box;
}

function caseRow(c) {
  const row = el("li", "case-row");
  append(row, levelBadge(c.level), " ", link(`#/cases/${encodeURIComponent(c.id)}`, c.title || c.id),
    el("span", "meta", ` ${enumText(c.status, "CASE_STATUS_")}`), caseClocks(c));
  return row;
}

export async function render(view) {
  view.classList.add("dashboard");
  const levels = section("dash.today", "levels");
  const trendBox = section("dash.trend", "trend-panel");
  const cases = section("dash.cases", "cases");
  const tasks = section("dash.tasks", "tasks");
  append(view, levels, trendBox, cases, tasks);
  const loaded = todaysEvents();
  fill(levels, async () => {
    const { events, today } = await loaded;
    const list = el("ol", "events");
    events.slice().sort((a, b) => (b.rising === true) - (a.rising === true) || LEVELS.indexOf(a.level) - LEVELS.indexOf(b.level))
      .slice(0, 12).forEach((e) => list.appendChild(eventRow(e)));
    return [today ? null : el("p", "help", t("dash.latest")), levelTiles(events), list];
  });
  fill(trendBox, trend);
  fill(cases, async () => {
    const reply = await api.get("/api/cases", { page_size: "100" });
    const open = (reply.cases || []).filter((c) => OPEN.includes(c.status));
    const list = el("ol", "cases");
    open.forEach((c) => list.appendChild(caseRow(c)));
    return open.length ? list : el("p", "help", t("dash.none"));
  });
  fill(tasks, async () => {
    const reply = await api.get("/api/tasks", { overdue_only: "true", page_size: "100" });
    const list = el("ol", "tasks");
    for (const task of reply.tasks || []) {
      list.appendChild(append(el("li"), el("strong", null, task.assignee_unit || enumText(task.agency, "AGENCY_")), " ",
        task.description || task.id, " ", link(`#/cases/${encodeURIComponent(task.case_id)}`, "→"),
        el("span", "meta over", ` ${when(task.due_at)}`)));
    }
    return list.children.length ? list : el("p", "help", t("dash.none"));
  });
}
