// `ipckit bench` end to end: the quick run and its documented JSON schema,
// CSV, refusal of a corrupted delivery, bad arguments, size-limit skips and
// the HTML report rendered by headless Chromium. Speed is never asserted.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../tools/ipckit/bench_payload.h"
#include "ipckit/deadline.hpp"
#include "ipckit/pipe.hpp"
#include "support/test_support.hpp"

namespace {

using ipckit::test::run_ipckit;
using ipckit::test::scoped_unlink;
using ipckit::test::unique_path;
using nlohmann::json;
using namespace std::chrono_literals;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string context(const ipckit::run_result& r) {
    return "status: " + r.status.describe() + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

/// The keys docs/bench.md documents, in backticks; the JSON must not grow an
/// undocumented key (the schema is a promise).
void expect_documented(const json& obj, const std::string& doc, const std::string& where) {
    for (const auto& [key, value] : obj.items()) {
        EXPECT_NE(doc.find("`" + key + "`"), std::string::npos)
            << "key '" << key << "' of " << where << " is not documented in docs/bench.md";
    }
}

void expect_latency_shape(const json& l, const std::string& where) {
    for (const char* k : {"count", "p50_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns"})
        ASSERT_TRUE(l.contains(k) && l[k].is_number()) << where << " lacks " << k;
    // Percentiles of one sample set are ordered whatever the machine does.
    EXPECT_LE(l["p50_ns"].get<double>(), l["p90_ns"].get<double>()) << where;
    EXPECT_LE(l["p90_ns"].get<double>(), l["p99_ns"].get<double>()) << where;
    EXPECT_LE(l["p99_ns"].get<double>(), l["p999_ns"].get<double>()) << where;
    EXPECT_LE(l["p999_ns"].get<double>(), l["max_ns"].get<double>()) << where;
    EXPECT_GT(l["count"].get<double>(), 0) << where;
}

TEST(BenchCli, QuickRunWritesTheDocumentedJsonAndCsv) {
    scoped_unlink json_file(unique_path("ipckit-bench-json"));
    scoped_unlink csv_file(unique_path("ipckit-bench-csv"));
    auto r = run_ipckit(
        {"bench", "--quick", "--quiet", "--transports", "pipe,socketpair,fifo", "--sizes", "64,1k",
         "--count", "200", "--json", json_file.path(), "--csv", csv_file.path()},
        {}, 180s);
    ASSERT_EQ(r.status.code, 0) << context(r);
    EXPECT_NE(r.out.find("hardware floor"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("size 1 KiB"), std::string::npos) << r.out;

    json doc = json::parse(slurp(json_file.path()));
    std::string md = slurp(std::string(IPCKIT_SOURCE_DIR) + "/docs/bench.md");
    ASSERT_FALSE(md.empty()) << "docs/bench.md is missing";

    ASSERT_EQ(doc.at("schema_version"), 1);
    EXPECT_EQ(doc.at("tool"), "ipckit bench");
    EXPECT_TRUE(doc.at("ok").get<bool>());
    EXPECT_TRUE(doc.at("errors").empty());
    expect_documented(doc, md, "the document");
    const json& m = doc.at("machine");
    for (const char* k : {"cpu_model", "kernel", "compiler", "build_type", "flags", "hostname"})
        EXPECT_TRUE(m.at(k).is_string()) << k;
    EXPECT_GE(m.at("logical_cpus").get<int>(), 1);
    EXPECT_GE(m.at("online_cpus").get<int>(), 1);
    expect_documented(m, md, "machine");
    const json& cfg = doc.at("config");
    EXPECT_EQ(cfg.at("sizes"), json::array({64, 1024}));
    EXPECT_EQ(cfg.at("count"), 200);
    EXPECT_TRUE(cfg.at("quick").get<bool>());
    expect_documented(cfg, md, "config");
    expect_latency_shape(doc.at("floor").at("cacheline"), "floor.cacheline");
    ASSERT_EQ(doc.at("floor").at("memcpy").size(), 2u);
    expect_documented(doc.at("floor"), md, "floor");
    expect_documented(doc.at("floor").at("memcpy")[0], md, "floor.memcpy[]");

    const json& rows = doc.at("results");
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows[0].at("kind"), "floor") << "the floor rows come first";
    bool saw_pipe_64 = false, saw_socketpair_1k = false, saw_raw = false;
    for (const auto& row : rows) {
        std::string where =
            row.at("name").get<std::string>() + "@" + std::to_string(row.at("size").get<int>());
        expect_documented(row, md, "results[]");
        expect_documented(row.at("ratios"), md, "results[].ratios");
        std::string status = row.at("status");
        EXPECT_TRUE(status == "ok" || status == "skipped") << where << ": " << row.at("reason");
        if (status != "ok") continue;
        expect_latency_shape(row.at("latency"), where);
        if (row.at("kind") == "floor") continue;
        ASSERT_TRUE(row.at("throughput").is_object()) << where;
        EXPECT_EQ(row.at("throughput").at("count"), 200) << where;
        EXPECT_GT(row.at("throughput").at("msgs_per_s").get<double>(), 0) << where;
        EXPECT_TRUE(row.at("ratios").at("latency_x_floor").is_number()) << where;
        if (row.at("name") == "pipe" && row.at("size") == 64) saw_pipe_64 = true;
        if (row.at("name") == "socketpair" && row.at("size") == 1024) saw_socketpair_1k = true;
        if (row.at("name") == "raw-pipe") {
            saw_raw = true;
            EXPECT_EQ(row.at("kind"), "raw");
        }
        if (row.at("name") == "pipe" && saw_raw) {
            EXPECT_TRUE(row.at("ratios").at("latency_x_raw").is_number());
        }
    }
    EXPECT_TRUE(saw_pipe_64);
    EXPECT_TRUE(saw_socketpair_1k);
    EXPECT_TRUE(saw_raw)
        << "the raw-syscall peers are built with ipckit and must be found next to it";

    std::string csv = slurp(csv_file.path());
    EXPECT_NE(csv.find("# schema_version: 1\n"), std::string::npos);
    EXPECT_NE(csv.find("\nname,kind,mechanism,size,status,"), std::string::npos);
    EXPECT_NE(csv.find("\npipe,ipckit,pipe,64,ok,"), std::string::npos) << csv;
}

TEST(BenchCli, CorruptedDeliveryFailsTheRun) {
    // The hidden test hook flips one byte of message 3 of every stream; the
    // receiving process must notice, for ipckit channels and for peers alike.
    auto r = run_ipckit({"bench", "--quiet", "--transports", "pipe,fifo", "--sizes", "1k",
                         "--count", "50", "--inject-corruption", "3"},
                        {}, 120s);
    EXPECT_EQ(r.status.code, 1) << context(r);
    EXPECT_NE(
        r.err.find("ipckit: bench pipe 1 KiB: message 3: corrupt message (checksum mismatch)"),
        std::string::npos)
        << context(r);
    EXPECT_NE(r.err.find("ipckit: bench fifo 1 KiB: message 3: corrupt"), std::string::npos)
        << context(r);
    EXPECT_NE(r.err.find("raw-pipe"), std::string::npos) << "the peer must fail too\n"
                                                         << context(r);
    EXPECT_NE(r.out.find("FAILED runs"), std::string::npos) << r.out;
}

TEST(BenchCli, UncorruptedSameRunPasses) {
    // The control for the test above: same options without the hook.
    auto r = run_ipckit(
        {"bench", "--quiet", "--transports", "pipe,fifo", "--sizes", "1k", "--count", "50"}, {},
        120s);
    EXPECT_EQ(r.status.code, 0) << context(r);
}

TEST(BenchCli, SizeBeyondATransportLimitIsSkippedWithTheReason) {
    scoped_unlink json_file(unique_path("ipckit-bench-json"));
    auto r = run_ipckit({"bench", "--quiet", "--transports", "raw-udp", "--sizes", "64k", "--count",
                         "20", "--json", json_file.path()},
                        {}, 120s);
    ASSERT_EQ(r.status.code, 0) << context(r);
    json doc = json::parse(slurp(json_file.path()));
    bool found = false;
    for (const auto& row : doc.at("results")) {
        if (row.at("name") != "raw-udp") continue;
        found = true;
        EXPECT_EQ(row.at("status"), "skipped");
        EXPECT_NE(row.at("reason").get<std::string>().find("limit of 65507 bytes"),
                  std::string::npos)
            << row.at("reason");
        EXPECT_TRUE(row.at("latency").is_null());
    }
    EXPECT_TRUE(found);
    EXPECT_NE(r.out.find("skipped: 65536 bytes exceeds"), std::string::npos) << r.out;
}

TEST(BenchCli, BadArgumentsAreUsageErrors) {
    struct bad {
        std::vector<std::string> args;
        const char* message;
    };
    const bad cases[] = {
        {{"bench", "--sizes", "8"}, "below the minimum of 24 bytes"},
        {{"bench", "--sizes", "lots"}, "not a size"},
        {{"bench", "--pin", "0"}, "expected two CPUs"},
        {{"bench", "--pin", "a,b"}, "not CPU numbers"},
        {{"bench", "--count", "0"}, "count"},
        {{"bench", "--transports", "carrier-pigeon"}, "nothing is called 'carrier-pigeon'"},
    };
    for (const auto& c : cases) {
        auto r = run_ipckit(c.args, {}, 30s);
        EXPECT_EQ(r.status.code, 2) << c.args.back() << "\n" << context(r);
        EXPECT_NE(r.err.find(c.message), std::string::npos) << context(r);
    }
}

std::string find_chromium() {
    for (const char* name : {"chromium", "chromium-browser"}) {
        for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/bin/"}) {
            std::string p = std::string(dir) + name;
            if (::access(p.c_str(), X_OK) == 0) return p;
        }
    }
    return {};
}

TEST(BenchCli, HtmlReportRendersItsChartsInHeadlessChromium) {
    std::string chromium = find_chromium();
    if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium)";
    scoped_unlink html(unique_path("ipckit-bench-report") + ".html");
    auto r = run_ipckit({"bench", "--quick", "--quiet", "--transports", "pipe,socketpair",
                         "--sizes", "64,1k", "--count", "100", "--report", html.path()},
                        {}, 180s);
    ASSERT_EQ(r.status.code, 0) << context(r);
    std::string page = slurp(html.path());
    EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org/2000/svg"))
        << "the page must not load anything";
    EXPECT_EQ(page.find("https://"), std::string::npos) << "the page must not load anything";

    char profile[] = "/tmp/ipckit-bench-chromium-XXXXXX";
    ASSERT_NE(::mkdtemp(profile), nullptr);
    auto dom = ipckit::run(
        {chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", std::string("--user-data-dir=") + profile, "--dump-dom",
         "file://" + html.path()},
        {}, ipckit::deadline::after(90s));
    ipckit::run({"rm", "-rf", profile}, {}, ipckit::deadline::after(30s));
    ASSERT_FALSE(dom.timed_out) << "chromium did not finish";
    ASSERT_TRUE(dom.status.exited && dom.status.code == 0) << dom.status.describe() << "\n"
                                                           << dom.err;

    // The script sets this attribute after drawing; the source page has none.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(dom.out, m, std::regex("data-charts-rendered=\"([0-9]+)\"")))
        << "the chart script did not run:\n"
        << dom.out.substr(0, 2000);
    EXPECT_EQ(std::stoi(m[1]), 4) << "latency + throughput chart per size";
    EXPECT_EQ(page.find("class=\"bar\""), std::string::npos)
        << "bars must be drawn by the script, not served";
    std::ptrdiff_t bars = 0;
    for (std::size_t pos = 0; (pos = dom.out.find("class=\"bar\"", pos)) != std::string::npos;
         ++pos)
        ++bars;
    EXPECT_GE(bars, 8) << "every ok row of every chart has a bar";
    EXPECT_NE(dom.out.find("data-kind=\"latency\" data-size=\"1024\""), std::string::npos);
    EXPECT_NE(dom.out.find("data-kind=\"throughput\" data-size=\"64\""), std::string::npos);
}

}  // namespace

// The harness's verification, on its own: a message whose header and trailer
// arrived but whose body is the previous message's (a transport that copies
// short, into a reused buffer) fails the full check. With one body for
// every message it passed.
TEST(BenchPayload, PreviousMessagesBodyFailsTheFullCheck) {
    for (std::size_t size : {32u, 64u, 1024u, 65536u}) {
        SCOPED_TRACE(size);
        std::vector<std::string> bodies(BP_BODIES, std::string(size, '\0'));
        std::vector<std::uint64_t> hash(BP_BODIES);
        auto bytes = [](std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); };
        for (unsigned b = 0; b < BP_BODIES; ++b)
            hash[b] = bp_fill(bytes(bodies[b]), size, b);
        for (std::uint64_t seq = 1; seq < 8; ++seq) {
            std::string previous = bodies[(seq - 1) % BP_BODIES];
            bp_stamp(bytes(previous), size, seq - 1, hash[(seq - 1) % BP_BODIES]);
            EXPECT_EQ(bp_check(bytes(previous), size, size, seq - 1, 1), BP_OK);
            std::string& current = bodies[seq % BP_BODIES];
            bp_stamp(bytes(current), size, seq, hash[seq % BP_BODIES]);
            EXPECT_EQ(bp_check(bytes(current), size, size, seq, 1), BP_OK);
            // Only the first 16 and last 8 bytes of `current` reach the buffer.
            std::string received = previous;
            std::memcpy(received.data(), current.data(), 16);
            std::memcpy(received.data() + size - 8, current.data() + size - 8, 8);
            EXPECT_EQ(bp_check(bytes(received), size, size, seq, 1), BP_BAD_CHECKSUM);
        }
    }
}
