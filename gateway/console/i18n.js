// Chinese first, English on the toggle; the choice is kept in localStorage. Missing English falls back to Chinese.
const TEXT = {
  zh: {
    "app.title": "清风 · 舆情工作台",
    "nav.dashboard": "总览", "nav.search": "检索", "nav.cases": "案件", "nav.publications": "发布",
    "tools.wall": "大屏", "tools.signout": "退出",
    "signin.title": "登录", "signin.token": "访问令牌", "signin.submit": "登录",
    "signin.help": "令牌换取短时会话（HttpOnly Cookie），令牌本身不保存在浏览器中。",
    "signin.failed": "登录失败",
    "level.WARNING_LEVEL_RED": "红色", "level.WARNING_LEVEL_ORANGE": "橙色",
    "level.WARNING_LEVEL_YELLOW": "黄色", "level.WARNING_LEVEL_BLUE": "蓝色", "level.WARNING_LEVEL_UNSPECIFIED": "无", "level.WARNING_LEVEL_NONE": "未达预警",
    "status.CASE_STATUS_AWAITING_ACKNOWLEDGEMENT": "待确认", "status.CASE_STATUS_ACKNOWLEDGED": "已确认",
    "status.CASE_STATUS_IN_DISPOSITION": "处置中", "status.CASE_STATUS_VERIFYING": "核查中", "status.CASE_STATUS_CLOSED": "已结案",
    "status.TASK_STATUS_OPEN": "待办", "status.TASK_STATUS_IN_PROGRESS": "办理中", "status.TASK_STATUS_DONE": "已完成",
    "status.TASK_STATUS_CANCELLED": "已取消", "event.total": "累计",
    "dash.today": "今日事件（按级别）", "dash.rising": "上升", "dash.trend": "相关帖文趋势",
    "dash.trend.note": "近24小时每小时帖文数（检索聚合，全部匹配帖文）",
    "dash.trend.events": "近24小时活跃事件的帖文数，按事件首次出现的小时汇总（事件指标）",
    "dash.cases": "待处置案件", "dash.tasks": "逾期任务", "dash.none": "暂无",
    "dash.latest": "今日无事件，显示最近活跃的事件",
    "event.title": "事件", "event.posts": "帖文", "event.first": "首次出现", "event.last": "最近", "event.keywords": "关键词",
    "event.regions": "属地", "event.chart": "传播态势", "event.history": "级别变化与依据", "event.reasons": "定级依据",
    "event.explain": "全部判定条件", "event.matched": "命中", "event.unmatched": "未命中",
    "event.keyposts": "关键帖文", "event.authors": "粉丝最多的作者", "event.sources": "来源", "event.regionsof": "帖文属地", "event.timeline": "帖文时间线（每小时）", "event.metrics": "各时间窗指标", "event.case": "所属案件",
    "event.nocase": "尚未立案", "event.previous": "此前级别", "event.graded": "定级时间", "event.hold": "降级冷却至",
    "event.override": "人工定级", "event.policy": "策略版本", "event.summary": "摘要",
    "event.changes": "级别变化历史", "event.nochanges": "尚无级别变化", "event.risingat": "变化时呈上升势头",
    "search.q": "检索词，如：受贿 \"某县住建局\"", "search.go": "检索", "search.save": "保存检索",
    "search.saved": "已保存的检索", "search.more": "下一页", "search.total": "共 {n} 条结果",
    "search.posts": "帖文", "search.events": "事件", "search.order.relevance": "相关度", "search.order.newest": "最新",
    "search.order.reach": "影响力", "search.region": "区划代码", "search.source": "来源 ID", "search.event": "事件 ID",
    "search.relevance": "最低相关度", "search.after": "起始时间", "search.before": "截止时间", "search.media": "仅媒体",
    "search.level": "最低级别", "search.rising": "仅上升", "search.original": "原文", "search.delete": "删除",
    "search.page": "第 {n} 页",
    "case.board": "案件看板", "case.ack": "确认接收", "case.acked": "已确认", "case.ackdue": "确认时限",
    "case.golden": "黄金期（2小时）", "case.refute": "辟谣时限（24小时）", "case.routed": "责任层级",
    "case.status": "状态", "case.tasks": "任务（按单位）", "case.meetings": "会议", "case.instructions": "领导批示",
    "case.report": "舆情快报", "case.event": "事件", "case.escalations": "升级记录", "case.select": "选择一个案件查看详情",
    "case.escalate": "升级", "case.escalate.level": "升至", "case.escalate.reason": "升级理由（必填）", "case.escalate.go": "提交升级",
    "clock.left": "剩余", "clock.over": "已超时", "clock.done": "已完成",
    "pub.drafts": "稿件", "pub.queue": "待我签批", "pub.status": "状态", "pub.due": "发布时限", "pub.step": "当前签批", "pub.approve": "批准", "pub.approved": "已批准",
    "pub.reject": "退回", "pub.rejected": "已退回", "pub.comment": "退回意见（必填）",
    "status.OFFICIAL_LEVEL_OPINION_OFFICE": "舆情办", "status.OFFICIAL_LEVEL_DEPUTY_STANDING_MEMBER": "分管常委",
    "status.OFFICIAL_LEVEL_SECRETARY": "书记", "status.OFFICIAL_LEVEL_MUNICIPAL_COMMITTEE": "市委",
    "status.AGENCY_OPINION_OFFICE": "舆情办", "status.AGENCY_DISCIPLINE_COMMISSION": "纪委监委", "status.AGENCY_PROPAGANDA": "宣传部",
    "status.AGENCY_POLICE_CYBER": "网警", "status.AGENCY_PETITIONS": "信访局", "status.AGENCY_DAILY_NEWSPAPER": "日报社",
    "status.AGENCY_TELECOM_REGULATOR": "通信管理局", "status.AGENCY_CASE_MANAGEMENT": "案管室",
    "status.AGENCY_MUNICIPAL_COMMITTEE": "市委", "status.AGENCY_RESPONSIBLE_UNIT": "责任单位",
    "status.DRAFT_STATUS_EDITING": "编辑中", "status.DRAFT_STATUS_IN_REVIEW": "审签中", "status.DRAFT_STATUS_APPROVED": "已批准",
    "status.DRAFT_STATUS_REJECTED": "已退回", "status.DRAFT_STATUS_SCHEDULED": "已排期", "status.DRAFT_STATUS_PUBLISHED": "已发布",
    "status.SIGN_OFF_DECISION_APPROVED": "同意", "status.SIGN_OFF_DECISION_REJECTED": "退回",
    "err.401": "未登录或会话已过期", "err.403": "无权访问此功能（网关拒绝）", "err.404": "未找到或无权查看",
    "err.501": "该服务尚未提供此功能", "err.503": "该服务暂不可用", "err.other": "请求失败",
    "loading": "加载中…",
  },
  en: {
    "app.title": "Qingfeng · Opinion console",
    "nav.dashboard": "Dashboard", "nav.search": "Search", "nav.cases": "Cases", "nav.publications": "Publications",
    "tools.wall": "Wall", "tools.signout": "Sign out",
    "signin.title": "Sign in", "signin.token": "Access token", "signin.submit": "Sign in",
    "signin.help": "The token is exchanged for a short session (HttpOnly cookie); the browser never stores it.",
    "signin.failed": "Sign-in failed",
    "level.WARNING_LEVEL_RED": "Red", "level.WARNING_LEVEL_ORANGE": "Orange",
    "level.WARNING_LEVEL_YELLOW": "Yellow", "level.WARNING_LEVEL_BLUE": "Blue", "level.WARNING_LEVEL_UNSPECIFIED": "None", "level.WARNING_LEVEL_NONE": "Below warning",
    "status.CASE_STATUS_AWAITING_ACKNOWLEDGEMENT": "awaiting acknowledgement", "status.CASE_STATUS_ACKNOWLEDGED": "acknowledged",
    "status.CASE_STATUS_IN_DISPOSITION": "in disposition", "status.CASE_STATUS_VERIFYING": "verifying", "status.CASE_STATUS_CLOSED": "closed",
    "status.TASK_STATUS_OPEN": "open", "status.TASK_STATUS_IN_PROGRESS": "in progress", "status.TASK_STATUS_DONE": "done",
    "status.TASK_STATUS_CANCELLED": "cancelled", "event.total": "all",
    "dash.today": "Today's events by level", "dash.rising": "rising", "dash.trend": "Relevant posts",
    "dash.trend.note": "Posts per hour over the last 24 h (search aggregation over every matching post)",
    "dash.trend.events": "Posts of the events active in the last 24 h, by the hour each was first seen (event metrics)",
    "dash.cases": "Open cases", "dash.tasks": "Overdue tasks", "dash.none": "None",
    "dash.latest": "No events today; showing the most recently active",
    "event.title": "Event", "event.posts": "Posts", "event.first": "First seen", "event.last": "Last seen",
    "event.keywords": "Keywords", "event.regions": "Regions", "event.chart": "Spread", "event.history": "Level and reasons",
    "event.reasons": "Reasons", "event.explain": "Every criterion", "event.matched": "matched",
    "event.unmatched": "not matched", "event.keyposts": "Key posts", "event.authors": "Most-followed authors",
    "event.sources": "Sources", "event.regionsof": "Regions of posts", "event.timeline": "Posts per hour", "event.metrics": "Metrics per window", "event.case": "Case", "event.nocase": "No case yet", "event.previous": "Previous level",
    "event.graded": "Graded at", "event.hold": "Cool-down until", "event.override": "Set by hand",
    "event.policy": "Policy version", "event.summary": "Summary",
    "event.changes": "Level history", "event.nochanges": "No level change yet", "event.risingat": "rising at the change",
    "search.q": "Query, e.g. 受贿 \"某县住建局\"", "search.go": "Search", "search.save": "Save search",
    "search.saved": "Saved searches", "search.more": "Next page", "search.total": "{n} results",
    "search.posts": "Posts", "search.events": "Events", "search.order.relevance": "Relevance",
    "search.order.newest": "Newest", "search.order.reach": "Reach", "search.region": "Region code",
    "search.source": "Source id", "search.event": "Event id", "search.relevance": "Min relevance",
    "search.after": "From", "search.before": "Until", "search.media": "Media only", "search.level": "Min level",
    "search.rising": "Rising only", "search.original": "original", "search.delete": "delete", "search.page": "page {n}",
    "case.board": "Case board", "case.ack": "Acknowledge", "case.acked": "Acknowledged", "case.ackdue": "Ack due",
    "case.golden": "Golden period (2 h)", "case.refute": "Refutation (24 h)", "case.routed": "Routed to",
    "case.status": "Status", "case.tasks": "Tasks by agency", "case.meetings": "Meetings",
    "case.instructions": "Instructions", "case.report": "Rapid report", "case.event": "Event",
    "case.escalations": "Escalations", "case.select": "Pick a case to see it",
    "case.escalate": "Escalate", "case.escalate.level": "Raise to", "case.escalate.reason": "Reason (required)", "case.escalate.go": "Escalate now",
    "clock.left": "left", "clock.over": "overdue", "clock.done": "done",
    "pub.drafts": "Drafts", "pub.queue": "Awaiting my sign-off", "pub.status": "Status", "pub.due": "Due",
    "pub.step": "Current step", "pub.approve": "Approve", "pub.approved": "Approved",
    "pub.reject": "Reject", "pub.rejected": "Rejected", "pub.comment": "Why it is rejected (required)",
    "err.401": "Not signed in or session expired", "err.403": "Not granted (refused by the gateway)",
    "err.404": "Not found or not visible to you", "err.501": "This service does not offer this yet",
    "err.503": "This service is not available", "err.other": "Request failed",
    "loading": "Loading…",
  },
};

const KEY = "qingfeng.lang";
let lang = localStorage.getItem(KEY) === "en" ? "en" : "zh";

export function currentLang() {
  return lang;
}

export function setLang(value) {
  lang = value === "en" ? "en" : "zh";
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
}

export function t(key, vars) {
  let text = TEXT[lang][key] ?? TEXT.zh[key] ?? key;
  for (const [name, value] of Object.entries(vars || {})) text = text.replace(`{${name}}`, String(value));
  return text;
}

// Static labels in index.html carry data-i18n; views are re-rendered on a switch.
export function translateStatic(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
}
