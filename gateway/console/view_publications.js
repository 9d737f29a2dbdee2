// Publications: drafts with their sign-off history, and the sign-off queue of the signed-in approver (drafts in review
// whose next pending step is one of the identity's roles), where a draft is approved or rejected with a comment
// (退回, required). While the publisher is missing, the part says so (501/503) instead of breaking.
import { api } from "./api.js";
import { append, clock, el, enumText, errorNode, fill, levelBadge, section, when } from "./dom.js";
import { t } from "./i18n.js";

function pendingStep(draft) {
  return (draft.sign_off || []).find((s) => !s.decision || s.decision.endsWith("UNSPECIFIED"));
}

function decided(step) {
  return step.decision && !step.decision.endsWith("UNSPECIFIED");
}

// The draft's history: every decided step of its sign-off chain, with the signer's comment.
function history(d) {
  const steps = (d.sign_off || []).filter(decided);
  if (!steps.length) return null;
  const list = el("ul", "signoff-history");
  for (const s of steps) {
    const item = el("li", s.decision.endsWith("REJECTED") ? "rejected" : "approved",
      `${s.order}. ${s.role} · ${enumText(s.decision, "SIGN_OFF_DECISION_")} · ${(s.signer || {}).display_name || (s.signer || {}).id || ""} · ${when(s.decided_at)}`);
    if (s.comment) item.appendChild(el("q", "comment", s.comment));
    list.appendChild(item);
  }
  return list;
}

// Reject the pending step with a comment; the answer (the draft as it is now) replaces the row, history included.
function rejectForm(d, row) {
  const form = el("form", "reject-form");
  const comment = el("input");
  comment.type = "text";
  comment.name = "comment";
  comment.required = true;
  comment.maxLength = 2000;
  comment.placeholder = t("pub.comment");
  const reject = el("button", "danger", t("pub.reject"));
  reject.type = "submit";
  const result = el("span", "action-result");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!comment.value.trim()) {
      result.replaceChildren(el("p", "error", t("pub.comment")));
      return;
    }
    reject.disabled = true;
    try {
      const reply = await api.post(`/api/drafts/${encodeURIComponent(d.id)}/signoff`,
        { decision: "SIGN_OFF_DECISION_REJECTED", comment: comment.value.trim(), revision: String(d.revision || 0) });
      const updated = draftRow(reply.draft || d, false);
      updated.appendChild(el("span", "done", ` ${t("pub.rejected")}`));
      row.replaceWith(updated);
    } catch (err) {
      result.replaceChildren(errorNode(err));
      reject.disabled = false;
    }
  });
  return append(form, comment, " ", reject, " ", result);
}

// Approve the pending step of a draft in the queue; the publisher checks the role and the revision read.
function approveButton(d) {
  const box = el("span", "actions");
  const approve = el("button", "primary", t("pub.approve"));
  approve.type = "button";
  approve.addEventListener("click", async () => {
    approve.disabled = true;
    try {
      const reply = await api.post(`/api/drafts/${encodeURIComponent(d.id)}/signoff`,
        { decision: "SIGN_OFF_DECISION_APPROVED", revision: String(d.revision || 0) });
      box.replaceChildren(el("span", "done", `${t("pub.approved")} · ${enumText((reply.draft || {}).status, "DRAFT_STATUS_")}`));
      const stale = box.parentElement && box.parentElement.querySelector(".reject-form");
      if (stale) stale.remove();  // the step is decided: no rejecting it afterwards
    } catch (err) {
      box.replaceChildren(errorNode(err));
    }
  });
  box.appendChild(approve);
  return box;
}

function draftRow(d, canSign) {
  const step = pendingStep(d);
  const row = el("li", "draft");
  row.dataset.id = d.id;
  append(row, levelBadge(d.level), " ", el("strong", null, d.title || d.id),
    el("span", "meta", ` · ${enumText(d.status, "DRAFT_STATUS_")} · ${enumText(d.kind, "DRAFT_KIND_")} · ${when(d.updated_at)}`),
    step ? el("span", "meta", ` · ${t("pub.step")}: ${step.role}`) : null,
    d.due_at ? clock("pub.due", d.due_at, d.published_at) : null, canSign ? approveButton(d) : null,
    canSign ? rejectForm(d, row) : null, history(d));
  return row;
}

export async function render(view, _id, _query, session) {
  view.classList.add("publications");
  const queue = section("pub.queue", "queue");
  const drafts = section("pub.drafts", "drafts");
  append(view, queue, drafts);
  const loaded = api.get("/api/drafts", { page_size: "200" });
  const roles = new Set((session.identity || {}).roles || []);
  fill(queue, async () => {
    const mine = ((await loaded).drafts || []).filter((d) => d.status === "DRAFT_STATUS_IN_REVIEW" && roles.has((pendingStep(d) || {}).role));
    const list = el("ol");
    mine.forEach((d) => list.appendChild(draftRow(d, true)));
    return mine.length ? list : el("p", "help", t("dash.none"));
  });
  fill(drafts, async () => {
    const list = el("ol");
    ((await loaded).drafts || []).forEach((d) => list.appendChild(draftRow(d, false)));
    return list.children.length ? list : el("p", "help", t("dash.none"));
  });
}
