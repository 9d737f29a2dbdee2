// Case board: open cases with their clocks; one case's acknowledgement, tasks by agency, meetings, instructions and
// rapid report. Acknowledging is a write: the gateway checks the grant and the session's CSRF token.
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
  append(head, actions, el("p", "help", t("case.escalate.note")));
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
