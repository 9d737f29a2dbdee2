// Publications: drafts, and the sign-off queue of the signed-in approver (drafts in review whose next pending step
// is one of the identity's roles). While the publisher is missing, the part says so (501/503) instead of breaking.
import { api } from "./api.js";
import { append, clock, el, enumText, errorNode, fill, levelBadge, section, when } from "./dom.js";
import { t } from "./i18n.js";

function pendingStep(draft) {
  return (draft.sign_off || []).find((s) => !s.decision || s.decision.endsWith("UNSPECIFIED"));
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
    } catch (err) {
      box.replaceChildren(errorNode(err));
    }
  });
  box.appendChild(approve);
  return box;
}

function draftRow(d, canSign) {
  const step = pendingStep(d);
  return append(el("li", "draft"), levelBadge(d.level), " ", el("strong", null, d.title || d.id),
    el("span", "meta", ` · ${enumText(d.status, "DRAFT_STATUS_")} · ${enumText(d.kind, "DRAFT_KIND_")} · ${when(d.updated_at)}`),
    step ? el("span", "meta", ` · ${t("pub.step")}: ${step.role}`) : null,
    d.due_at ? clock("pub.due", d.due_at, d.published_at) : null, canSign ? approveButton(d) : null);
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
