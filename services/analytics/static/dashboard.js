// The dashboard: reads /reports with the filters in the address, draws charts with Chart.js and
// tables, and links each report's CSV. When done it writes a marker (#render-status, hidden) that
// the browser tests read: how many charts were drawn and how many data points they hold.
//
// Language: English or 中文, every word from MESSAGES below (the page's own words by
// data-i18n="key"; codes from the services, such as statuses, reasons and KPI names, as
// "status.<code>", "reason.<code>", "kpi.<code>", shown as the code when the catalogue does
// not know one yet). The choice: ?lang=en|zh-CN, else the reader's last choice (the switch in
// the header, kept in localStorage), else the browser's languages (what it sends as
// Accept-Language). tests/unit/test_analytics_dashboard_i18n.py checks that every key used is
// in both languages.
"use strict";
(function () {
  // <catalogue>
  const MESSAGES = {
    "en": {
      "chart.best_sellers": "Best sellers (units)",
      "chart.carriers": "Carrier on-time delivery",
      "chart.hold_reasons": "Hold reasons",
      "chart.orders_by_day": "Orders per day",
      "chart.orders_by_status": "Orders by status",
      "chart.ratings": "Ratings",
      "chart.rejection_reasons": "Rejection reasons",
      "chart.returns_by_reason": "Returns by reason",
      "chart.rfm_segments": "Customer segments (RFM)",
      "col.amount": "amount",
      "col.average_order_value": "average order",
      "col.base_currency": "base currency",
      "col.carrier": "carrier",
      "col.cohort": "cohort",
      "col.converted_at_rate_as_of": "rates as of",
      "col.confidence_b_given_a": "share of the first's orders",
      "col.cost_per_parcel": "cost per parcel",
      "col.cost_samples": "parcels with a cost",
      "col.country": "country",
      "col.currency": "currency",
      "col.customer_id": "customer id",
      "col.customers": "customers",
      "col.day": "day",
      "col.delivered": "delivered",
      "col.error": "error",
      "col.exceptions": "exceptions",
      "col.external_order_id": "order number",
      "col.metric": "KPI",
      "col.month": "month %(n)s",
      "col.on_time": "on time",
      "col.on_time_delivery_rate": "on-time rate",
      "col.order_id": "order id",
      "col.orders": "orders",
      "col.parcels": "parcels",
      "col.placed_at": "placed",
      "col.promise_reported": "with a promise",
      "col.rating": "rating",
      "col.reason": "reason",
      "col.reasons": "reasons",
      "col.refunds": "refunds",
      "col.refunds_amount": "refunded",
      "col.requests": "requests",
      "col.return_rate": "return rate",
      "col.returned": "returned",
      "col.revenue": "revenue",
      "col.segment": "segment",
      "col.seller": "seller",
      "col.service": "service",
      "col.sku": "SKU",
      "col.sku_a": "SKU",
      "col.sku_b": "bought with",
      "col.sold": "sold",
      "col.status": "status",
      "col.status_at": "status since",
      "col.store": "store",
      "col.support": "share of baskets",
      "col.tracking_numbers": "tracking",
      "col.unconverted": "no rate to the base",
      "col.units": "units",
      "col.value": "value",
      "col.velocity_30d": "units per day (30 d)",
      "col.velocity_7d": "units per day (7 d)",
      "col.velocity_per_day": "units per day",
      "csv": "CSV",
      "filters.all": "all",
      "filters.apply": "Apply",
      "filters.carrier": "Carrier",
      "filters.country": "Country",
      "filters.from": "From",
      "filters.store": "Store",
      "filters.to": "To",
      "filters.warehouse": "Warehouse",
      "footer.credits": "charts by Chart.js (MIT), served by this service",
      "kpi.acceptance_rate": "acceptance rate",
      "kpi.accepted": "accepted",
      "kpi.average_rating": "average rating",
      "kpi.backorder_rate": "backorder rate",
      "kpi.backordered": "backordered",
      "kpi.backordered_now": "backordered now",
      "kpi.cost_per_parcel": "cost per parcel",
      "kpi.cost_samples": "parcels with a cost",
      "kpi.customers": "customers",
      "kpi.fill_rate": "fill rate",
      "kpi.held": "held for review",
      "kpi.held_now": "on hold now",
      "kpi.hold_age_max_h": "hold time, longest (h)",
      "kpi.hold_age_p50_h": "hold time, median (h)",
      "kpi.hold_rate": "hold rate",
      "kpi.oldest_open_hold_h": "oldest open hold (h)",
      "kpi.on_time_delivery_rate": "on-time delivery rate",
      "kpi.on_time_ship_rate": "on-time shipping rate",
      "kpi.orders": "orders",
      "kpi.parcels": "parcels",
      "kpi.parcels_delivered": "parcels delivered",
      "kpi.placed_to_shipped_p50_h": "order to shipment, median (h)",
      "kpi.placed_to_shipped_p90_h": "order to shipment, 90th percentile (h)",
      "kpi.ratings": "ratings",
      "kpi.refunds": "refunds",
      "kpi.refunds_amount": "refunded",
      "kpi.rejected": "rejected",
      "kpi.repeat_customer_rate": "repeat customer rate",
      "kpi.repeat_customers": "repeat customers",
      "kpi.return_requests": "after-sales requests",
      "kpi.reviewed": "reviewed",
      "kpi.ship_sla_h": "shipping promise (h)",
      "kpi.shipped": "shipped",
      "kpi.shipped_on_time": "shipped on time",
      "kpi.sold": "sold",
      "kpi.stock_decided": "stock decided",
      "lang.en": "English",
      "lang.zh-CN": "中文",
      "reason.amount_mismatch": "amount mismatch",
      "reason.approved_by_operator": "approved by an operator",
      "reason.blocked_customer": "blocked customer",
      "reason.cancelled_by_customer": "cancelled by the customer",
      "reason.high_value": "high value",
      "reason.incomplete_address": "incomplete address",
      "reason.invalid_promo": "invalid promo code",
      "reason.invalid_quantity": "invalid quantity",
      "reason.malformed": "malformed",
      "reason.merge_candidate": "can ship with another order",
      "reason.out_of_stock": "out of stock",
      "reason.payment_failed": "payment failed",
      "reason.payment_pending": "payment pending",
      "reason.qc_damaged": "damaged in QC",
      "reason.qc_failed": "QC failed",
      "reason.qc_weight": "weight check failed",
      "reason.rejected_by_operator": "rejected by an operator",
      "reason.restricted_goods": "restricted goods",
      "reason.suspected_duplicate": "suspected duplicate",
      "reason.too_large": "too large",
      "reason.unknown_sku": "unknown SKU",
      "reason.unsupported_country": "country not served",
      "render.done": "Updated: %(orders)s orders in these filters",
      "render.error": "Error: %(message)s",
      "render.loading": "loading",
      "rma_reason.changed_mind": "changed mind",
      "rma_reason.damaged": "damaged",
      "rma_reason.defective": "defective",
      "rma_reason.not_as_described": "not as described",
      "rma_reason.not_received": "not received",
      "rma_reason.other": "other",
      "rma_reason.wrong_item": "wrong item",
      "search.by.customer": "customer id",
      "search.by.order_id": "order id",
      "search.by.tracking": "tracking number",
      "search.submit": "Search",
      "search.title": "Find an order",
      "search.token": "admin token",
      "search.value": "value",
      "segment.at_risk": "at risk",
      "segment.champions": "champions",
      "segment.lost": "lost",
      "segment.loyal": "loyal",
      "segment.needs_attention": "needs attention",
      "segment.new": "new",
      "series.on_time_pct": "on-time delivery %",
      "series.orders": "orders",
      "series.parcels": "parcels",
      "series.sold": "sold",
      "series.units": "units",
      "status.accepted": "accepted",
      "status.backordered": "backordered",
      "status.cancelled": "cancelled",
      "status.delivered": "delivered",
      "status.delivery_exception": "delivery exception",
      "status.on_hold": "on hold",
      "status.packed": "packed",
      "status.placed": "placed",
      "status.refunded": "refunded",
      "status.rejected": "rejected",
      "status.reserved": "reserved",
      "status.return_authorized": "return authorized",
      "status.return_received": "return received",
      "status.return_rejected": "return rejected",
      "status.shipped": "shipped",
      "table.best_sellers": "Best sellers and velocity",
      "table.carriers": "Carriers",
      "table.cohorts": "Monthly cohorts",
      "table.no_data": "no data for these filters",
      "table.pairs": "Frequently bought together",
      "table.refunds": "Refunds",
      "table.returns_by_sku": "Return rate by SKU",
      "table.sellers": "By seller (base currency)",
      "table.summary": "All KPIs",
      "title": "Shopkeeper analytics",
      "unit.d": "%(n)s d",
      "unit.h": "%(n)s h",
      "unit.min": "%(n)s min",
      "unit.s": "%(n)s s"
    },
    "zh-CN": {
      "chart.best_sellers": "畅销商品（件数）",
      "chart.carriers": "承运商准时送达",
      "chart.hold_reasons": "暂扣原因",
      "chart.orders_by_day": "每日订单",
      "chart.orders_by_status": "按状态统计的订单",
      "chart.ratings": "评分",
      "chart.rejection_reasons": "拒单原因",
      "chart.returns_by_reason": "按原因统计的退货",
      "chart.rfm_segments": "客户分群（RFM）",
      "col.amount": "金额",
      "col.average_order_value": "客单价",
      "col.base_currency": "本位币",
      "col.carrier": "承运商",
      "col.cohort": "群组",
      "col.converted_at_rate_as_of": "汇率日期",
      "col.confidence_b_given_a": "在前者订单中的比例",
      "col.cost_per_parcel": "单包裹运费",
      "col.cost_samples": "有运费记录的包裹",
      "col.country": "国家/地区",
      "col.currency": "币种",
      "col.customer_id": "客户 ID",
      "col.customers": "客户数",
      "col.day": "日期",
      "col.delivered": "已签收",
      "col.error": "错误",
      "col.exceptions": "异常",
      "col.external_order_id": "订单号",
      "col.metric": "指标",
      "col.month": "第 %(n)s 月",
      "col.on_time": "准时",
      "col.on_time_delivery_rate": "准时率",
      "col.order_id": "订单 ID",
      "col.orders": "订单",
      "col.parcels": "包裹",
      "col.placed_at": "下单时间",
      "col.promise_reported": "有承诺时效",
      "col.rating": "评分",
      "col.reason": "原因",
      "col.reasons": "原因",
      "col.refunds": "退款笔数",
      "col.refunds_amount": "退款金额",
      "col.requests": "申请数",
      "col.return_rate": "退货率",
      "col.returned": "已退",
      "col.revenue": "销售额",
      "col.segment": "分群",
      "col.seller": "卖家",
      "col.service": "服务",
      "col.sku": "SKU",
      "col.sku_a": "SKU",
      "col.sku_b": "搭配购买",
      "col.sold": "已售",
      "col.status": "状态",
      "col.status_at": "状态时间",
      "col.store": "店铺",
      "col.support": "占多件订单比例",
      "col.tracking_numbers": "运单号",
      "col.unconverted": "无汇率（原币）",
      "col.units": "件数",
      "col.value": "数值",
      "col.velocity_30d": "日均件数（30 天）",
      "col.velocity_7d": "日均件数（7 天）",
      "col.velocity_per_day": "日均件数",
      "csv": "CSV",
      "filters.all": "全部",
      "filters.apply": "应用",
      "filters.carrier": "承运商",
      "filters.country": "国家/地区",
      "filters.from": "开始日期",
      "filters.store": "店铺",
      "filters.to": "结束日期",
      "filters.warehouse": "仓库",
      "footer.credits": "图表由 Chart.js（MIT 许可）绘制，由本服务提供",
      "kpi.acceptance_rate": "接受率",
      "kpi.accepted": "已接受",
      "kpi.average_rating": "平均评分",
      "kpi.backorder_rate": "缺货率",
      "kpi.backordered": "缺货",
      "kpi.backordered_now": "当前缺货",
      "kpi.cost_per_parcel": "单包裹运费",
      "kpi.cost_samples": "有运费记录的包裹",
      "kpi.customers": "客户数",
      "kpi.fill_rate": "满足率",
      "kpi.held": "暂扣审核",
      "kpi.held_now": "当前暂扣",
      "kpi.hold_age_max_h": "最长暂扣时长（小时）",
      "kpi.hold_age_p50_h": "暂扣时长中位数（小时）",
      "kpi.hold_rate": "暂扣率",
      "kpi.oldest_open_hold_h": "最早未结暂扣（小时）",
      "kpi.on_time_delivery_rate": "准时送达率",
      "kpi.on_time_ship_rate": "按时发货率",
      "kpi.orders": "订单数",
      "kpi.parcels": "包裹数",
      "kpi.parcels_delivered": "已签收包裹",
      "kpi.placed_to_shipped_p50_h": "下单到发货中位数（小时）",
      "kpi.placed_to_shipped_p90_h": "下单到发货 90 分位（小时）",
      "kpi.ratings": "评价数",
      "kpi.refunds": "退款笔数",
      "kpi.refunds_amount": "退款金额",
      "kpi.rejected": "已拒绝",
      "kpi.repeat_customer_rate": "回头客比例",
      "kpi.repeat_customers": "回头客",
      "kpi.return_requests": "售后申请",
      "kpi.reviewed": "已审核",
      "kpi.ship_sla_h": "发货时限（小时）",
      "kpi.shipped": "已发货",
      "kpi.shipped_on_time": "按时发货",
      "kpi.sold": "已售",
      "kpi.stock_decided": "已分配库存",
      "lang.en": "English",
      "lang.zh-CN": "中文",
      "reason.amount_mismatch": "金额不符",
      "reason.approved_by_operator": "人工审核通过",
      "reason.blocked_customer": "黑名单客户",
      "reason.cancelled_by_customer": "客户取消",
      "reason.high_value": "高金额",
      "reason.incomplete_address": "地址不完整",
      "reason.invalid_promo": "优惠码无效",
      "reason.invalid_quantity": "数量无效",
      "reason.malformed": "格式错误",
      "reason.merge_candidate": "可与其他订单合并发货",
      "reason.out_of_stock": "缺货",
      "reason.payment_failed": "支付失败",
      "reason.payment_pending": "待付款",
      "reason.qc_damaged": "质检发现损坏",
      "reason.qc_failed": "质检未通过",
      "reason.qc_weight": "称重检查未通过",
      "reason.rejected_by_operator": "人工审核拒绝",
      "reason.restricted_goods": "限运商品",
      "reason.suspected_duplicate": "疑似重复",
      "reason.too_large": "消息过大",
      "reason.unknown_sku": "未知 SKU",
      "reason.unsupported_country": "不支持的国家",
      "render.done": "已更新：筛选范围内 %(orders)s 个订单",
      "render.error": "出错：%(message)s",
      "render.loading": "加载中",
      "rma_reason.changed_mind": "不想要了",
      "rma_reason.damaged": "损坏",
      "rma_reason.defective": "有缺陷",
      "rma_reason.not_as_described": "与描述不符",
      "rma_reason.not_received": "未收到",
      "rma_reason.other": "其他",
      "rma_reason.wrong_item": "发错货",
      "search.by.customer": "客户 ID",
      "search.by.order_id": "订单 ID",
      "search.by.tracking": "运单号",
      "search.submit": "搜索",
      "search.title": "查找订单",
      "search.token": "管理员令牌",
      "search.value": "搜索内容",
      "segment.at_risk": "流失风险",
      "segment.champions": "核心客户",
      "segment.lost": "已流失",
      "segment.loyal": "忠实客户",
      "segment.needs_attention": "需要关注",
      "segment.new": "新客户",
      "series.on_time_pct": "准时送达 %",
      "series.orders": "订单",
      "series.parcels": "包裹",
      "series.sold": "已售",
      "series.units": "件数",
      "status.accepted": "已接受",
      "status.backordered": "缺货",
      "status.cancelled": "已取消",
      "status.delivered": "已签收",
      "status.delivery_exception": "配送异常",
      "status.on_hold": "暂扣审核",
      "status.packed": "已打包",
      "status.placed": "已下单",
      "status.refunded": "已退款",
      "status.rejected": "已拒绝",
      "status.reserved": "已预留库存",
      "status.return_authorized": "退货已批准",
      "status.return_received": "退货已收到",
      "status.return_rejected": "退货被拒",
      "status.shipped": "已发货",
      "table.best_sellers": "畅销商品与动销速度",
      "table.carriers": "承运商",
      "table.cohorts": "月度客户群组",
      "table.no_data": "这些筛选条件下没有数据",
      "table.pairs": "经常一起购买",
      "table.refunds": "退款",
      "table.returns_by_sku": "各 SKU 退货率",
      "table.sellers": "按卖家（本位币）",
      "table.summary": "全部指标",
      "title": "Shopkeeper 数据分析",
      "unit.d": "%(n)s 天",
      "unit.h": "%(n)s 小时",
      "unit.min": "%(n)s 分钟",
      "unit.s": "%(n)s 秒"
    }
  };
  // </catalogue>
  const LANGS = ["en", "zh-CN"];
  const STORED = "shopkeeper-dashboard-lang";
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  const statusEl = document.getElementById("render-status");
  const statusText = document.getElementById("status-text");
  const charts = {};
  const palette = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477",
                   "#66aa00", "#b82e2e", "#316395", "#994499", "#22aa99"];
  let lang = chooseLanguage();

  function chooseLanguage() {
    const asked = params.get("lang");
    if (LANGS.includes(asked)) return asked;
    let saved = null;
    try { saved = localStorage.getItem(STORED); } catch (e) { saved = null; }
    if (LANGS.includes(saved)) return saved;
    for (const tag of navigator.languages || [navigator.language || ""]) {
      const t = tag.toLowerCase();
      if (t.startsWith("zh")) return "zh-CN";
      if (t.startsWith("en")) return "en";
    }
    return "en";
  }

  function t(key, values) {
    const text = MESSAGES[lang][key] ?? MESSAGES.en[key] ?? key;
    return text.replace(/%\((\w+)\)s/g, (_, name) => String((values || {})[name] ?? ""));
  }

  // A code in words: the first of `kinds` ("reason", or ["reason", "rma_reason"]) that the
  // catalogue knows it as, else the code itself.
  function label(kinds, code) {
    if (code === null || code === undefined || code === "") return "–";
    for (const kind of [].concat(kinds)) {
      const text = MESSAGES[lang][kind + "." + code];
      if (text !== undefined) return text;
    }
    return String(code);
  }

  function number(v, digits) {
    return new Intl.NumberFormat(lang, digits === undefined ? {} :
      { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(v);
  }

  function translatePage() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
    document.querySelectorAll("[data-lang]").forEach((b) => {
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
    });
  }

  function query() {
    const q = new URLSearchParams();
    for (const [k, v] of params) if (v && k !== "lang") q.append(k, v);
    return q.toString();
  }

  function draw(name, type, labels, datasets, options) {
    if (charts[name]) charts[name].destroy();
    const el = document.getElementById("c-" + name);
    charts[name] = new Chart(el, {
      type: type,
      data: { labels: labels, datasets: datasets },
      options: Object.assign({ animation: false, responsive: true, maintainAspectRatio: false,
                               plugins: { legend: { display: datasets.length > 1 || type === "doughnut" } } },
                             options || {}),
    });
    return datasets.reduce((n, d) => n + d.data.filter((x) => x !== null && x !== 0).length, 0);
  }

  function bar(name, rows, key, kind, value, series, horizontal) {
    return draw(name, "bar", rows.map((r) => kind ? label(kind, r[key]) : r[key]),
                [{ label: t(series), data: rows.map((r) => r[value]), backgroundColor: palette[0] }],
                horizontal ? { indexAxis: "y" } : {});
  }

  // A column's values that are codes, shown in words.
  const CODES = { status: "status", reason: ["reason", "rma_reason"], metric: "kpi",
                  segment: "segment" };

  function column(c) {
    const month = /^m(\d+)$/.exec(c);
    if (month) return { text: t("col.month", { n: month[1] }), known: true };
    const key = "col." + c;
    return { text: t(key), known: key in MESSAGES[lang] };
  }

  function table(id, rows, limit) {
    const el = document.getElementById(id);
    el.replaceChildren();
    if (!rows.length) {
      const td = el.insertRow().insertCell();
      td.textContent = t("table.no_data");
      return;
    }
    const cols = [];
    rows.forEach((r) => Object.keys(r).forEach((k) => { if (!cols.includes(k)) cols.push(k); }));
    const head = el.insertRow();
    cols.forEach((c) => {
      const th = document.createElement("th");
      const name = column(c);
      th.textContent = name.text;
      if (!name.known) th.className = "code";  // a column the catalogue does not know yet
      head.appendChild(th);
    });
    rows.slice(0, limit || 50).forEach((r) => {
      const tr = el.insertRow();
      cols.forEach((c) => {
        const td = tr.insertCell();
        const v = r[c];
        td.textContent = v === null || v === undefined ? "–" : CODES[c] ? label(CODES[c], v)
          : typeof v === "object" ? JSON.stringify(v) : typeof v === "number" ? number(v) : v;
        if (typeof v === "number") td.className = "n";
      });
    });
  }

  // By seller: each seller's figures in its base currency (the per-currency ones stay in the
  // other tables); what no rate links to the base is shown in its own currency.
  function sellerRows(sellers) {
    return sellers.map((s) => ({
      seller: s.name, base_currency: s.base_currency, orders: s.orders,
      revenue: s.revenue + " " + s.base_currency,
      refunds_amount: s.refunds_amount + " " + s.base_currency,
      average_order_value: s.average_order_value === null ? null
        : s.average_order_value + " " + s.base_currency,
      unconverted: s.unconverted.map((u) => u.revenue + " " + u.currency).join(", ") || null,
      converted_at_rate_as_of: s.converted_at_rate_as_of,
    }));
  }

  const TILES = [["orders"], ["acceptance_rate", "%"], ["hold_rate", "%"], ["backorder_rate", "%"],
    ["fill_rate", "%"], ["placed_to_shipped_p50_h", "h"], ["placed_to_shipped_p90_h", "h"],
    ["on_time_ship_rate", "%"], ["on_time_delivery_rate", "%"], ["cost_per_parcel"],
    ["refunds_amount"], ["average_rating"], ["repeat_customer_rate", "%"], ["held_now"],
    ["backordered_now"]];

  function tiles(summary) {
    const kpi = Object.fromEntries(summary.map((r) => [r.metric, r.value]));
    const el = document.getElementById("tiles");
    el.replaceChildren();
    TILES.forEach(([key, unit]) => {
      const v = kpi[key];
      const div = document.createElement("div");
      div.className = "tile";
      div.dataset.kpi = key;
      const b = document.createElement("b");
      b.textContent = v === null || v === undefined ? "–" : unit === "%" ? number(v * 100, 1) + " %"
        : unit === "h" ? hours(v) : typeof v === "number" ? number(v) : v;
      const s = document.createElement("span");
      s.textContent = label("kpi", key);
      div.append(b, s);
      el.appendChild(div);
    });
  }

  function hours(h) {
    if (h >= 48) return t("unit.d", { n: number(h / 24, 1) });
    if (h >= 1) return t("unit.h", { n: number(h, 1) });
    if (h * 60 >= 1) return t("unit.min", { n: number(h * 60, 1) });
    return t("unit.s", { n: number(h * 3600, 1) });
  }

  async function options() {
    const res = await fetch("/reports/options");
    const opts = await res.json();
    for (const [name, values] of Object.entries(opts)) {
      const sel = form.elements[name];
      values.forEach((v) => { const o = document.createElement("option"); o.value = o.textContent = v; sel.appendChild(o); });
      if (params.get(name)) sel.value = params.get(name);
    }
    for (const name of ["from", "to"]) if (params.get(name)) form.elements[name].value = params.get(name);
  }

  let last = null;  // the reports drawn, redrawn in the other language without asking again

  async function render() {
    const q = query();
    const res = await fetch("/reports" + (q ? "?" + q : ""));
    if (!res.ok) throw new Error("reports: HTTP " + res.status);
    last = (await res.json()).reports;
    document.querySelectorAll("a[data-csv]").forEach((a) => {
      a.href = "/reports/" + a.dataset.csv + ".csv" + (q ? "?" + q : "");
    });
    show(last);
  }

  function show(r) {
    tiles(r.summary);
    let points = 0;
    points += draw("orders_by_day", "bar", r.orders_by_day.map((d) => d.day), [
      { label: t("series.orders"), data: r.orders_by_day.map((d) => d.orders), borderColor: palette[0], backgroundColor: palette[0] },
      { label: t("series.sold"), data: r.orders_by_day.map((d) => d.sold), borderColor: palette[3], backgroundColor: palette[3] }]);
    points += bar("orders_by_status", r.orders_by_status, "status", "status", "orders", "series.orders");
    points += bar("rejection_reasons", r.rejection_reasons, "reason", "reason", "orders", "series.orders", true);
    points += bar("hold_reasons", r.hold_reasons, "reason", "reason", "orders", "series.orders", true);
    points += draw("carriers", "bar", r.carriers.map((c) => c.carrier + " " + c.service), [
      { label: t("series.on_time_pct"), data: r.carriers.map((c) => c.on_time_delivery_rate === null ? null : c.on_time_delivery_rate * 100), backgroundColor: palette[3] },
      { label: t("series.parcels"), data: r.carriers.map((c) => c.parcels), backgroundColor: palette[0] }]);
    points += bar("best_sellers", r.best_sellers.slice(0, 15), "sku", null, "units", "series.units", true);
    points += draw("rfm_segments", "doughnut", r.rfm_segments.map((s) => label("segment", s.segment)),
                   [{ data: r.rfm_segments.map((s) => s.customers), backgroundColor: palette }]);
    points += bar("ratings", r.ratings, "rating", null, "orders", "series.orders");
    points += draw("returns_by_reason", "doughnut", r.returns_by_reason.map((s) => label("rma_reason", s.reason)),
                   [{ data: r.returns_by_reason.map((s) => s.requests), backgroundColor: palette }]);
    table("t-carriers", r.carriers);
    table("t-best_sellers", r.best_sellers);
    table("t-returns_by_sku", r.returns_by_sku.filter((x) => x.returned > 0));
    table("t-pairs", r.pairs);
    table("t-cohorts", r.cohorts);
    table("t-refunds", r.refunds);
    table("t-sellers", sellerRows(r.sellers || []));
    table("t-summary", r.summary, 100);
    const orders = (r.summary.find((x) => x.metric === "orders") || {}).value || 0;
    statusText.textContent = t("render.done", { orders: number(orders) });
    statusEl.textContent = "rendered charts=" + Object.keys(charts).length + " points=" + points + " orders=" + orders;
    statusEl.dataset.rendered = "true";
    statusEl.dataset.charts = String(Object.keys(charts).length);
    statusEl.dataset.points = String(points);
  }

  document.querySelectorAll("[data-lang]").forEach((b) => b.addEventListener("click", () => {
    lang = b.dataset.lang;
    try { localStorage.setItem(STORED, lang); } catch (e) { /* private mode: this page only */ }
    params.set("lang", lang);
    history.replaceState(null, "", "?" + params.toString());
    translatePage();
    if (last) show(last);
  }));

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    for (const name of ["from", "to", "store", "country", "warehouse", "carrier"]) {
      const v = form.elements[name].value;
      if (v) params.set(name, v); else params.delete(name);
    }
    history.replaceState(null, "", "?" + params.toString());
    render().catch(fail);
  });

  document.getElementById("search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    const res = await fetch("/orders?" + new URLSearchParams({ [f.elements.by.value]: f.elements.q.value }),
                            { headers: { Authorization: "Bearer " + f.elements.token.value } });
    const body = await res.json();
    table("t-search", res.ok ? body.orders : [{ error: body.detail }]);
  });

  function fail(err) {
    statusText.textContent = t("render.error", { message: err.message });
    statusEl.textContent = "error: " + err.message;
    statusEl.dataset.rendered = "error";
  }

  translatePage();
  options().then(render).catch(fail);
})();
