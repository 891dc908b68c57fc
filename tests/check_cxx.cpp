// The public API used from C++ (tests/check_cxx.sh builds it against
// libhps.so and libhps.a). Without arguments it checks what needs no job;
// under `hps launch --self-serve` the server runs a handler written in C++
// and the worker checks a push and pull round trip through it.
#include <hps/error.h>
#include <hps/hps.h>
#include <hps/server.h>
#include <hps/version.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>

namespace {

std::map<uint64_t, float> table;

// A summing store on a std::map; vals and out hold floats (f32 range).
int map_handler(hps_request *r, void *)
{
	if (r->dtype != HPS_F32 || r->width != 1)
		return HPS_EINVAL;
	const float *vals = static_cast<const float *>(r->vals);
	float *out = static_cast<float *>(r->out);
	for (size_t i = 0; r->type != HPS_REQ_PULL && i < r->nkeys; i++)
		table[r->keys[i]] += vals[i];
	if (r->type == HPS_REQ_PUSH)
		return 0;
	for (size_t i = 0; i < r->nkeys; i++)
		out[i] = table[r->keys[i]];
	return static_cast<int>(r->nkeys);
}

int fail(const char *what, int rc)
{
	std::fprintf(stderr, "%s: %s\n", what, hps_strerror(rc));
	return 1;
}

// No job needed: the version and every error code's name.
int offline()
{
	std::string v = std::to_string(HPS_VERSION_MAJOR) + "." + std::to_string(HPS_VERSION_MINOR) + "." +
			std::to_string(HPS_VERSION_PATCH);
	if (v != HPS_VERSION_STRING) {
		std::fprintf(stderr, "HPS_VERSION_STRING %s is not %s\n", HPS_VERSION_STRING, v.c_str());
		return 1;
	}
	std::set<std::string> names;
	for (int e = HPS_OK; e >= HPS_EVALLEN; e--) {
		const char *s = hps_strerror(e);
		if (!s || !*s)
			return fail("hps_strerror gave no name", e);
		names.insert(s);
	}
	if (names.size() != static_cast<size_t>(1 - HPS_EVALLEN) || !hps_strerror(12345)) {
		std::fprintf(stderr, "hps_strerror: names not distinct\n");
		return 1;
	}
	std::printf("c++ offline: version %s, %zu error names\n", HPS_VERSION_STRING, names.size());
	return 0;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc > 1 && std::strcmp(argv[1], "--offline") == 0)
		return offline();
	hps_ctx *ctx = nullptr;
	int rc = hps_init(&ctx, &argc, argv);
	if (rc)
		return fail("hps_init", rc);
	if (hps_role(ctx) == HPS_ROLE_SERVER) {
		rc = hps_server_run(ctx, map_handler, nullptr);
		hps_finalize(ctx);
		return rc ? fail("hps_server_run", rc) : 0;
	}
	hps_worker *w = nullptr;
	if ((rc = hps_worker_open(ctx, 1, &w)))
		return fail("hps_worker_open", rc);
	const uint64_t keys[] = {2, 40, 600};
	const float push[] = {0.5f, -8.0f, 1024.25f};
	float pull[3] = {};
	hps_opts opts = {};
	opts.dtype = HPS_F32;
	if ((rc = hps_wait(w, hps_push(w, keys, 3, push, &opts))) ||
	    (rc = hps_wait(w, hps_pull(w, keys, 3, pull, &opts))))
		return fail("push/pull", rc);
	if (std::memcmp(push, pull, sizeof push) != 0) {
		std::fprintf(stderr, "pulled %g %g %g, pushed %g %g %g\n", pull[0], pull[1], pull[2], push[0],
			     push[1], push[2]);
		return 1;
	}
	int nw = hps_num_workers(ctx), ns = hps_num_servers(ctx);
	if ((rc = hps_barrier(ctx)) || (rc = hps_worker_close(w)) || (rc = hps_finalize(ctx)))
		return fail("close", rc);
	std::printf("c++ round trip ok: %d worker(s), %d server(s)\n", nw, ns);
	return 0;
}
