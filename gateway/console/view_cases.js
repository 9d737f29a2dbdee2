// Case board: open cases with their clocks; one case's acknowledgement and escalation by hand, tasks by agency,
// meetings, instructions and rapid report. Acknowledging and escalating are writes: the gateway checks the grant and
// the session's CSRF token, the coordinator the role (its routing policy); the page shows whatever they answer.
import { api } from "./api.js";
import { append, el, enumText, errorNode, fill, levelBadge, link, section, when } from "./dom.js";
import { t } from "./i18n.js";
import { caseClocks } from "./view_dashboard.js";

function caseCard(c, selected) {
  const card = el("li", `case-card${selected ? " selected" : ""}`);
  append(card, levelBadge(c.level), " ", link(`#/cases/${encodeURIComponent(c.id)}`, c.title || c.id),
    el("div", "meta", `${enumText(c.status, "CASE_STATUS_")} · ${enumText(c.routed_to, "OFFICIAL_LEVEL_")} · ${when(c.created_at)}`),
    caseClocks(c));
  return card;
}

function tasksByAgency(tasks) {
  const groups = new Map();
  for (const task of tasks) {
    const key = task.assignee_unit || enumText(task.agency, "AGENCY_") || "—";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(task);
  }
  const box = el("div", "task-groups");
  for (const [agency, list] of groups) {
    const ul = el("ul");
    for (const task of list) {
      append(ul, append(el("li", task.overdue ? "overdue" : ""), el("span", null, task.description || task.id),
        el("span", "meta", ` · ${enumText(task.status, "TASK_STATUS_")} · ${when(task.due_at)}${task.overdue ? " · ⚠" : ""}`)));
    }
    append(box, append(el("div", "task-group"), el("h3", null, agency), ul));
  }
  return groups.size ? box : el("p", "help", t("dash.none"));
}

const LEVELS = ["WARNING_LEVEL_BLUE", "WARNING_LEVEL_YELLOW", "WARNING_LEVEL_ORANGE", "WARNING_LEVEL_RED"];

function requestId() {
  return window.crypto && crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

// Escalate by hand: a level above the current one and a reason (both required). One request id per form, so a
// double click or a retry after a lost answer escalates once.
function escalateForm(c) {
  const higher = LEVELS.slice(LEVELS.indexOf(c.level) + 1);
  if (!higher.length || c.status === "CASE_STATUS_CLOSED") return null;
  const box = el("div", "escalate");
  const open = el("button", null, t("case.escalate"));
  open.type = "button";
  open.id = "escalate";
  const form = el("form", "escalate-form");
  form.id = "escalate-form";
  form.hidden = true;
  const level = el("select");
  level.id = "escalate-level";
  level.required = true;
  for (const value of higher) {
    const option = el("option", null, t(`level.${value}`));
    option.value = value;
    level.appendChild(option);
  }
  const reason = el("textarea");
  reason.id = "escalate-reason";
  reason.required = true;
  reason.maxLength = 2000;
  reason.rows = 2;
  reason.placeholder = t("case.escalate.reason");
  const submit = el("button", "primary", t("case.escalate.go"));
  submit.type = "submit";
  submit.id = "escalate-submit";
  const result = el("span", "action-result");
  result.id = "escalate-result";
  const id = requestId();
  open.addEventListener("click", () => {
    form.hidden = !form.hidden;
    if (!form.hidden) reason.focus();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!reason.value.trim()) {
      result.replaceChildren(el("p", "error", t("case.escalate.reason")));
      return;
    }
    submit.disabled = true;
    try {
      await api.post(`/api/cases/${encodeURIComponent(c.id)}/escalate`, { level: level.value, reason: reason.value.trim(), request_id: id });
      window.dispatchEvent(new HashChangeEvent("hashchange"));  // redraw with the new level, route and deadline
    } catch (err) {
      result.replaceChildren(errorNode(err));
      submit.disabled = false;
    }
  });
  append(form, append(el("label", null, `${t("case.escalate.level")} `), level), " ", reason, " ", submit);
  return append(box, open, form, result);
}

function detail(view, c) {
  const head = el("section", "panel case-detail");
  head.id = "case-detail";
  append(head, append(el("h2"), levelBadge(c.level), " ", c.title || c.id),
    el("p", "meta", `${t("case.status")}: ${enumText(c.status, "CASE_STATUS_")} · ${t("case.routed")}: ${enumText(c.routed_to, "OFFICIAL_LEVEL_")}`),
    caseClocks(c));
  if (c.event_id) head.appendChild(append(el("p"), `${t("case.event")}: `, link(`#/event/${encodeURIComponent(c.event_id)}`, c.event_id)));
  const actions = el("div", "actions");
  const result = el("span", "action-result");
  result.id = "ack-result";
  if (c.acknowledged_at) {
    const acked = el("span", "done", `${t("case.acked")} ${when(c.acknowledged_at)} ${(c.acknowledged_by || {}).display_name || ""}`);
    acked.id = "acked";
    actions.appendChild(acked);
  } else {
    const ack = el("button", "primary", t("case.ack"));
    ack.type = "button";
    ack.id = "ack";
    ack.addEventListener("click", async () => {
      ack.disabled = true;
      try {
        await api.post(`/api/cases/${encodeURIComponent(c.id)}/acknowledge`, {});
        window.dispatchEvent(new HashChangeEvent("hashchange"));  // redraw the board and the case as they are now
      } catch (err) {
        result.replaceChildren(errorNode(err));
        ack.disabled = false;
      }
    });
    actions.appendChild(ack);
  }
  const report = link(`/api/cases/${encodeURIComponent(c.id)}/report`, t("case.report"), "button");
  report.target = "_blank";
  report.rel = "noopener";
  append(actions, " ", report, " ", result);
  append(head, actions, escalateForm(c));
  if ((c.escalations || []).length) {
    const list = el("ul", "escalations");
    for (const e of c.escalations) {
      list.appendChild(el("li", null, `${when(e.escalated_at)} ${enumText(e.from_level, "OFFICIAL_LEVEL_")} → ${enumText(e.to_level, "OFFICIAL_LEVEL_")} (${enumText(e.cause, "ESCALATION_CAUSE_")})`));
    }
    append(head, el("h3", null, t("case.escalations")), list);
  }
  const tasks = section("case.tasks", "tasks-panel");
  const meetings = section("case.meetings", "meetings-panel");
  const instructions = section("case.instructions", "instructions-panel");
  append(view, head, tasks, meetings, instructions);
  const id = encodeURIComponent(c.id);
  fill(tasks, async () => tasksByAgency((await api.get("/api/tasks", { case_id: c.id, page_size: "200" })).tasks || []));
  fill(meetings, async () => {
    const list = el("ul");
    for (const m of (await api.get("/api/meetings", { case_id: c.id })).meetings || []) {
      list.appendChild(el("li", null, `${m.title || m.id} · ${when(m.scheduled_at)}${m.minutes ? " · " + m.minutes.slice(0, 80) : ""}`));
    }
    return list.children.length ? list : el("p", "help", t("dash.none"));
  });
  fill(instructions, async () => {
    const list = el("ul");
    for (const i of (await api.get(`/api/cases/${id}/instructions`)).instructions || []) {
      const leader = i.leader || {};
      list.appendChild(el("li", null, `${leader.display_name || ""} ${leader.role || ""}: ${i.text || ""} (${when(i.issued_at)})`));
    }
    return list.children.length ? list : el("p", "help", t("dash.none"));
  });
}

export async function render(view, id) {
  view.classList.add("case-board");
  const board = section("case.board", "board");
  view.appendChild(board);
  await fill(board, async () => {
    const cases = (await api.get("/api/cases", { page_size: "200" })).cases || [];
    const list = el("ol", "case-cards");
    cases.forEach((c) => list.appendChild(caseCard(c, c.id === id)));
    return cases.length ? list : el("p", "help", t("dash.none"));
  });
  if (!id) {
    view.appendChild(el("p", "help", t("case.select")));
    return;
  }
  try {
    detail(view, (await api.get(`/api/cases/${encodeURIComponent(id)}`)).case || {});
  } catch (err) {
    view.appendChild(append(el("section", "panel"), errorNode(err)));
  }
}
