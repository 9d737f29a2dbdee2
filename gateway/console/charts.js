// Apache ECharts (window.echarts, from /static/vendor, copied from npm at build time), canvas renderer.
import { el } from "./dom.js";

const charts = new Set();

export const LEVEL_COLORS = {
  WARNING_LEVEL_BLUE: "#1f6feb",
  WARNING_LEVEL_YELLOW: "#bf8700",
  WARNING_LEVEL_ORANGE: "#d4620f",
  WARNING_LEVEL_RED: "#c62828",
};

// A chart box; the option is applied once the box is in the document (ECharts needs its size).
export function chartBox(option, className) {
  const box = el("div", `chart ${className || ""}`);
  requestAnimationFrame(() => {
    if (!window.echarts) {
      box.textContent = "ECharts not installed (make install)";
      return;
    }
    const chart = window.echarts.init(box, null, { renderer: "canvas" });
    chart.setOption({ animation: false, textStyle: { fontFamily: "Noto Sans CJK SC, sans-serif" }, ...option });
    charts.add(chart);
    box.dataset.drawn = "true";
  });
  return box;
}

export function disposeCharts() {
  for (const chart of charts) chart.dispose();
  charts.clear();
}

export function resizeCharts() {
  for (const chart of charts) chart.resize();
}

export function barLine({ categories, series, yName }) {
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 48, right: 16, top: 32, bottom: 32 },
    xAxis: { type: "category", data: categories },
    yAxis: { type: "value", name: yName || "" },
    series,
  };
}
