// Writers for `ipckit bench`: the human table, JSON (docs/bench.md), CSV and
// the self-contained HTML report.
#include <cmath>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "bench.hpp"

#ifndef IPCKIT_VERSION
#define IPCKIT_VERSION "unknown"
#endif

namespace ipckit::cli::bench {
namespace {

using nlohmann::json;

std::string size_label(std::size_t n) {
    if (n >= (1u << 20) && n % (1u << 20) == 0) return fmt::format("{} MiB", n >> 20);
    if (n >= 1024 && n % 1024 == 0) return fmt::format("{} KiB", n >> 10);
    return fmt::format("{} B", n);
}

std::string ns_label(double ns) {
    if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
    if (ns < 1e6) return fmt::format("{:.2f} us", ns / 1e3);
    if (ns < 1e9) return fmt::format("{:.2f} ms", ns / 1e6);
    return fmt::format("{:.2f} s", ns / 1e9);
}

std::string rate_label(double per_s) {
    if (per_s >= 1e9) return fmt::format("{:.2f} G", per_s / 1e9);
    if (per_s >= 1e6) return fmt::format("{:.2f} M", per_s / 1e6);
    if (per_s >= 1e3) return fmt::format("{:.1f} k", per_s / 1e3);
    return fmt::format("{:.0f}", per_s);
}

std::string ratio_label(const std::optional<double>& r) {
    return r ? fmt::format("{:.2f}x", *r) : "-";
}

json opt(const std::optional<double>& v) {
    return v ? json(*v) : json(nullptr);
}

json latency_json(const latency_stats& s) {
    return {{"count", s.count},    {"p50_ns", s.p50_ns},   {"p90_ns", s.p90_ns},
            {"p99_ns", s.p99_ns},  {"p999_ns", s.p999_ns}, {"max_ns", s.max_ns},
            {"mean_ns", s.mean_ns}};
}

json document(const report& r) {
    json machine = {{"cpu_model", r.machine.cpu_model},
                    {"logical_cpus", r.machine.logical_cpus},
                    {"online_cpus", r.machine.online_cpus},
                    {"kernel", r.machine.kernel},
                    {"compiler", r.machine.compiler},
                    {"build_type", r.machine.build_type},
                    {"flags", r.machine.flags},
                    {"hostname", r.machine.hostname}};
    json config = {
        {"sizes", r.config.sizes},
        {"count", r.config.count},
        {"byte_budget", r.config.byte_budget},
        {"repeat", r.config.repeat},
        {"pin", r.config.pin_parent >= 0 ? json::array({r.config.pin_parent, r.config.pin_child})
                                         : json(nullptr)},
        {"quick", r.config.quick},
        {"transports", r.config.transports}};
    json copies = json::array();
    for (const auto& c : r.floor.memcpy_by_size)
        copies.push_back(
            {{"size", c.size}, {"ns_per_copy", c.ns_per_copy}, {"mib_per_s", c.mib_per_s}});
    json results = json::array();
    for (const auto& row : r.rows) {
        json t = nullptr;
        if (row.throughput)
            t = {{"count", row.throughput->count},
                 {"seconds", row.throughput->seconds},
                 {"msgs_per_s", row.throughput->msgs_per_s},
                 {"mib_per_s", row.throughput->mib_per_s}};
        results.push_back({
            {"name", row.name},
            {"kind", row.kind},
            {"mechanism", row.mechanism},
            {"target", row.target},
            {"size", row.size},
            {"status", row.status},
            {"reason", row.reason},
            {"latency", row.latency ? latency_json(*row.latency) : json(nullptr)},
            {"throughput", t},
            {"throughput_skipped",
             row.throughput_skipped.empty() ? json(nullptr) : json(row.throughput_skipped)},
            {"ratios",
             {{"latency_x_floor", opt(row.latency_x_floor)},
              {"latency_x_best_peer", opt(row.latency_x_best_peer)},
              {"latency_x_raw", opt(row.latency_x_raw)},
              {"throughput_x_floor", opt(row.throughput_x_floor)},
              {"throughput_x_best_peer", opt(row.throughput_x_best_peer)},
              {"throughput_x_raw", opt(row.throughput_x_raw)}}},
        });
    }
    return {{"schema_version", schema_version},
            {"tool", "ipckit bench"},
            {"ipckit_version", IPCKIT_VERSION},
            {"started_at", r.started_at},
            {"finished_at", r.finished_at},
            {"ok", r.ok()},
            {"errors", r.errors},
            {"machine", machine},
            {"config", config},
            {"floor", {{"cacheline", latency_json(r.floor.cacheline)}, {"memcpy", copies}}},
            {"results", results}};
}

std::string csv_field(const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c == '\n' ? ' ' : c;
    }
    return out + "\"";
}

std::string csv_num(const std::optional<double>& v) {
    return v ? fmt::format("{:.6g}", *v) : "";
}

std::string html_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// The page draws its charts from the embedded JSON with plain DOM calls:
// no network, no library, readable offline and in CI's headless Chromium.
constexpr const char* kScript = R"JS(
(function () {
  const data = JSON.parse(document.getElementById('bench-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const el = (tag, attrs, parent, text) => {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  };
  const sizeLabel = n => n >= 1048576 && n % 1048576 === 0 ? (n / 1048576) + ' MiB'
                        : n >= 1024 && n % 1024 === 0 ? (n / 1024) + ' KiB' : n + ' B';
  const nsLabel = ns => ns < 1e3 ? ns.toFixed(0) + ' ns' : ns < 1e6 ? (ns / 1e3).toFixed(2) + ' us'
                        : (ns / 1e6).toFixed(2) + ' ms';
  const colors = {floor: '#888888', ipckit: '#1f77b4', raw: '#2ca02c', library: '#d62728'};
  const pcts = [['p50_ns', 1.0], ['p90_ns', 0.75], ['p99_ns', 0.5], ['p999_ns', 0.3]];
  const host = document.getElementById('charts');
  let charts = 0;
  // Horizontal bars, one group per contender; log scale when values span decades.
  function chart(title, rows, values, fmt, kind, size) {
    if (!rows.length) return;
    const section = document.createElement('section');
    const h = document.createElement('h3');
    h.textContent = title;
    section.appendChild(h);
    const barH = Math.max(16, 5 * values.length + 6), left = 170, width = 560, top = 8;
    const height = top + rows.length * barH + 30;
    const svg = el('svg', {width: left + width + 90, height: height, 'class': 'chart',
                           'data-kind': kind, 'data-size': size}, section);
    let max = 0, min = Infinity;
    rows.forEach(r => values.forEach(v => { const x = v.get(r); if (x > 0) { max = Math.max(max, x); min = Math.min(min, x); } }));
    const log = max / min > 50;
    const scale = x => x <= 0 ? 0 : log ? width * Math.log10(x / (min / 2)) / Math.log10(max / (min / 2))
                                      : width * x / max;
    rows.forEach((r, i) => {
      const y = top + i * barH;
      el('text', {x: left - 6, y: y + barH / 2 + 4, 'text-anchor': 'end', 'font-size': 11}, svg, r.name);
      values.forEach((v, j) => {
        const x = v.get(r);
        const bar = el('rect', {x: left, y: y + j * 5, width: Math.max(1, scale(x)), height: 4,
                                fill: colors[r.kind] || '#555', 'fill-opacity': v.opacity, 'class': 'bar'}, svg);
        el('title', {}, bar, r.name + ' ' + v.label + ': ' + fmt(x));
      });
      el('text', {x: left + scale(values[0].get(r)) + 4, y: y + 9, 'font-size': 10}, svg, fmt(values[0].get(r)));
    });
    el('line', {x1: left, y1: top, x2: left, y2: height - 24, stroke: '#000'}, svg);
    el('text', {x: left, y: height - 8, 'font-size': 10}, svg,
       (log ? 'log scale; ' : '') + values.map(v => v.label).join(', ') +
       (values.length > 1 ? ' (top to bottom)' : '') +
       ' · grey floor, blue ipckit, green raw syscalls, red libraries');
    host.appendChild(section);
    charts++;
  }
  data.config.sizes.forEach(size => {
    const ok = data.results.filter(r => r.size === size && r.status === 'ok');
    const lat = ok.filter(r => r.latency).sort((a, b) => a.latency.p50_ns - b.latency.p50_ns);
    chart('Latency (one way) — ' + sizeLabel(size), lat,
          pcts.map(([k, o]) => ({label: k.replace('_ns', '').replace('p999', 'p99.9'), opacity: o,
                                 get: r => r.latency[k]})), nsLabel, 'latency', size);
    const tp = ok.filter(r => r.throughput).sort((a, b) => b.throughput.mib_per_s - a.throughput.mib_per_s);
    chart('Throughput — ' + sizeLabel(size), tp,
          [{label: 'MiB/s', opacity: 1.0, get: r => r.throughput.mib_per_s}],
          x => x.toFixed(x < 10 ? 2 : 0) + ' MiB/s', 'throughput', size);
  });
  document.body.setAttribute('data-charts-rendered', String(charts));
})();
)JS";

}  // namespace

std::string format_table(const report& r) {
    std::string out;
    out += fmt::format("ipckit bench: {} ({} CPUs online), {}, {}, {}\n", r.machine.cpu_model,
                       r.machine.online_cpus, r.machine.kernel, r.machine.compiler,
                       r.machine.build_type);
    out += fmt::format(
        "latency = round trip / 2 between two processes; throughput = one-way stream, every "
        "message "
        "verified; xfloor / xpeer / xraw = times slower than the hardware floor / the fastest peer "
        "/ "
        "the raw C loop of the same mechanism (same run); every process ignores SIGPIPE, as the "
        "raw loops do\n");
    std::size_t current = static_cast<std::size_t>(-1);
    int rank = 0;
    auto header = [&] {
        out += fmt::format(
            "{:>3} {:<16} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9} {:>10} "
            "{:>7}\n",
            "#", "transport", "kind", "p50", "p90", "p99", "p99.9", "max", "xfloor", "xpeer",
            "xraw", "msgs/s", "MiB/s", "tp.xraw");
    };
    bool floor_done = false;
    for (const auto& row : r.rows) {
        if (row.kind == "floor") {
            if (!floor_done) {
                out += fmt::format(
                    "\nhardware floor: cache-line ping-pong p50 {} one way; memcpy per size "
                    "below\n",
                    ns_label(static_cast<double>(r.floor.cacheline.p50_ns)));
                header();
                floor_done = true;
            }
            out += fmt::format(
                "{:>3} {:<16} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9} {:>10} "
                "{:>7}\n",
                "-", "floor " + size_label(row.size), "floor",
                ns_label(static_cast<double>(row.latency->p50_ns)),
                ns_label(static_cast<double>(row.latency->p90_ns)),
                ns_label(static_cast<double>(row.latency->p99_ns)),
                ns_label(static_cast<double>(row.latency->p999_ns)),
                ns_label(static_cast<double>(row.latency->max_ns)), "1.00x", "", "",
                rate_label(row.throughput->msgs_per_s),
                fmt::format("{:.0f}", row.throughput->mib_per_s), "");
            continue;
        }
        if (row.size != current) {
            current = row.size;
            rank = 0;
            out += fmt::format("\nsize {} ({} messages per run)\n", size_label(row.size),
                               count_for(r.config, row.size));
            header();
        }
        if (row.status != "ok") {
            out += fmt::format("{:>3} {:<16} {:<8} {}: {}\n", "-", row.name, row.kind, row.status,
                               row.reason);
            continue;
        }
        std::string lat[5] = {"-", "-", "-", "-", "-"};
        if (row.latency) {
            lat[0] = ns_label(static_cast<double>(row.latency->p50_ns));
            lat[1] = ns_label(static_cast<double>(row.latency->p90_ns));
            lat[2] = ns_label(static_cast<double>(row.latency->p99_ns));
            lat[3] = ns_label(static_cast<double>(row.latency->p999_ns));
            lat[4] = ns_label(static_cast<double>(row.latency->max_ns));
        }
        std::string mps = row.throughput ? rate_label(row.throughput->msgs_per_s) : "-";
        std::string mib = row.throughput ? fmt::format("{:.1f}", row.throughput->mib_per_s) : "-";
        out += fmt::format(
            "{:>3} {:<16} {:<8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>9} {:>10} "
            "{:>7}\n",
            ++rank, row.name, row.kind, lat[0], lat[1], lat[2], lat[3], lat[4],
            ratio_label(row.latency_x_floor), ratio_label(row.latency_x_best_peer),
            ratio_label(row.latency_x_raw), mps, mib, ratio_label(row.throughput_x_raw));
        if (!row.throughput_skipped.empty())
            out += fmt::format("{:>3} {:<16} (throughput skipped: {})\n", "", "",
                               row.throughput_skipped);
    }
    if (!r.errors.empty()) {
        out += "\nFAILED runs:\n";
        for (const auto& e : r.errors)
            out += "  " + e + "\n";
    }
    return out;
}

std::string to_json(const report& r) {
    return document(r).dump(2) + "\n";
}

std::string to_csv(const report& r) {
    std::string out;
    // Machine description as leading '#' comment lines (pandas: comment='#').
    out += fmt::format("# schema_version: {}\n", schema_version);
    out += "# cpu_model: " + r.machine.cpu_model + "\n";
    out += fmt::format("# cpus: {} logical, {} online\n", r.machine.logical_cpus,
                       r.machine.online_cpus);
    out += "# kernel: " + r.machine.kernel + "\n";
    out += "# compiler: " + r.machine.compiler + "\n";
    out += "# build_type: " + r.machine.build_type + "\n";
    out += "# flags: " + r.machine.flags + "\n";
    out += "# started_at: " + r.started_at + "\n";
    out += fmt::format("# floor_cacheline_p50_ns: {}\n", r.floor.cacheline.p50_ns);
    out +=
        "name,kind,mechanism,size,status,latency_count,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,mean_ns,"
        "throughput_count,seconds,msgs_per_s,mib_per_s,latency_x_floor,latency_x_best_peer,latency_"
        "x_raw,"
        "throughput_x_floor,throughput_x_best_peer,throughput_x_raw,reason\n";
    for (const auto& row : r.rows) {
        out += fmt::format("{},{},{},{},{},", csv_field(row.name), row.kind, row.mechanism,
                           row.size, row.status);
        if (row.latency)
            out += fmt::format("{},{},{},{},{},{},{:.1f},", row.latency->count, row.latency->p50_ns,
                               row.latency->p90_ns, row.latency->p99_ns, row.latency->p999_ns,
                               row.latency->max_ns, row.latency->mean_ns);
        else
            out += ",,,,,,,";
        if (row.throughput)
            out += fmt::format("{},{:.9f},{:.1f},{:.2f},", row.throughput->count,
                               row.throughput->seconds, row.throughput->msgs_per_s,
                               row.throughput->mib_per_s);
        else
            out += ",,,,";
        out += fmt::format("{},{},{},{},{},{},", csv_num(row.latency_x_floor),
                           csv_num(row.latency_x_best_peer), csv_num(row.latency_x_raw),
                           csv_num(row.throughput_x_floor), csv_num(row.throughput_x_best_peer),
                           csv_num(row.throughput_x_raw));
        std::string reason = row.reason.empty() ? row.throughput_skipped : row.reason;
        out += csv_field(reason) + "\n";
    }
    return out;
}

std::string to_html(const report& r) {
    std::string data = document(r).dump();
    // Inside <script>, "</" could end the element early.
    for (std::size_t pos = 0; (pos = data.find("</", pos)) != std::string::npos; pos += 3)
        data.replace(pos, 2, "<\\/");
    std::string out;
    out +=
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>ipckit "
        "bench</title>\n";
    out +=
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:1100px}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right}td:nth-child(2),th:nth-child(2){text-align:left}.error{color:#b00}"
        ".skipped{color:#888}svg{display:block;margin-bottom:1em}</style>\n</head><body>\n";
    out += "<h1>ipckit bench</h1>\n";
    out +=
        fmt::format("<p>{} &middot; {} CPUs online &middot; {} &middot; {} ({}) &middot; {}</p>\n",
                    html_escape(r.machine.cpu_model), r.machine.online_cpus,
                    html_escape(r.machine.kernel), html_escape(r.machine.compiler),
                    html_escape(r.machine.build_type), html_escape(r.started_at));
    out +=
        "<p>Latency: round trip / 2 between two processes (percentiles). Throughput: one-way "
        "stream, every "
        "message verified. Ratios are same-run: times slower than the reference.</p>\n";
    if (!r.errors.empty()) {
        out += "<h2 class=\"error\">Failed runs</h2><ul>";
        for (const auto& e : r.errors)
            out += "<li class=\"error\">" + html_escape(e) + "</li>";
        out += "</ul>\n";
    }
    out +=
        "<h2>Charts</h2>\n<div id=\"charts\"></div>\n<noscript>The charts need JavaScript; the "
        "table below "
        "has every figure.</noscript>\n";
    out +=
        "<h2>Table</h2>\n<table><tr><th>size</th><th>transport</th><th>kind</th><th>status</"
        "th><th>p50</th>"
        "<th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>x floor</th><th>x best "
        "peer</th><th>x raw</th>"
        "<th>msgs/s</th><th>MiB/s</th><th>note</th></tr>\n";
    for (const auto& row : r.rows) {
        auto ns = [&](auto member) {
            return row.latency ? ns_label(static_cast<double>((*row.latency).*member))
                               : std::string("-");
        };
        out += fmt::format(
            "<tr "
            "class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
            "td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
            "td></tr>\n",
            row.status, size_label(row.size), html_escape(row.name), row.kind, row.status,
            ns(&latency_stats::p50_ns), ns(&latency_stats::p90_ns), ns(&latency_stats::p99_ns),
            ns(&latency_stats::p999_ns), ns(&latency_stats::max_ns),
            ratio_label(row.latency_x_floor), ratio_label(row.latency_x_best_peer),
            ratio_label(row.latency_x_raw),
            row.throughput ? rate_label(row.throughput->msgs_per_s) : "-",
            row.throughput ? fmt::format("{:.1f}", row.throughput->mib_per_s) : "-",
            html_escape(row.reason.empty() ? row.throughput_skipped : row.reason));
    }
    out += "</table>\n";
    out += "<script type=\"application/json\" id=\"bench-data\">" + data + "</script>\n";
    out += std::string("<script>") + kScript + "</script>\n</body></html>\n";
    return out;
}

}  // namespace ipckit::cli::bench
