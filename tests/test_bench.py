"""The benchmark harness runs end to end (`--quick`) and refuses to time wrong results.
This checks the harness, not the speed."""

from __future__ import annotations

import json

import pytest

from fastnn import bench


@pytest.mark.slow  # the harness end to end: run by .ci/run, not by the README's test command
def test_quick_run_writes_json_markdown_and_plot(tmp_path, capsys):
    assert bench.main(["--quick", "--no-torch", "--reps", "2", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    assert {c["network"] for c in results["cases"]} == set(bench.NETWORKS)
    for case in results["cases"]:
        assert {"gemm-bound", "fastnn-numpy-fused", "fastnn-numpy-pure", "numpy-tutorial"} <= set(case["ms"])
        assert all(t > 0 for t in case["ms"].values())
    assert results["online"]["tiny"]["fastnn-numpy"] > 0
    assert 0.3 < results["machine"]["core_ghz"] < 10  # a clock, measured: 4 cycles a multiply-add
    assert results["machine"]["float32_peak_gflops"] > 1
    assert all(set(c["bound_gemm"].values()) <= set(results["machine"]["gemm"]) for c in results["cases"])
    table = (tmp_path / "bench.md").read_text()
    assert "| network | batch | gemm-bound |" in table and "fused / bound" in table
    assert (tmp_path / "bench.png").stat().st_size > 10_000
    assert "wrote" in capsys.readouterr().out


def test_a_wrong_implementation_is_refused():
    def wrong(net, x, y, weights):
        return lambda: 123.0

    impls = {"fastnn-numpy-pure": ("cpu", bench.fastnn_step("numpy", False)), "wrong": ("cpu", wrong)}
    with pytest.raises(RuntimeError, match="wrong computed loss 123 but the pure Array-API path"):
        bench.time_case("tiny", 16, impls, reps=1)


def test_pytorch_runs_in_a_child_that_times_each_repetition_beside_fastnn():
    """Its loss is checked like the others', and fused / best torch is paired per repetition."""
    pytest.importorskip("torch")
    impls = {"fastnn-numpy-pure": ("cpu", bench.fastnn_step("numpy", False)),
             "fastnn-numpy-fused": ("cpu", bench.fastnn_step("numpy", True)),
             **{label: ("cpu", bench.torch_in_child(env)) for label, env in bench.TORCH_CHILDREN.items()}}
    case = bench.time_case("tiny", 64, impls, reps=3)
    assert set(case["first_loss"]) == set(impls)  # the child's first loss agreed with fastnn's
    assert case["ms"]["torch-eager"] > 0 and case["ms"]["torch-eager-tuned-malloc"] > 0
    best = min(case["ms"]["torch-eager"], case["ms"]["torch-eager-tuned-malloc"])
    assert 0.3 < case["fused_over_torch"] / (case["ms"]["fastnn-numpy-fused"] / best) < 3  # medians of ratios
    assert case["torch_threads"] >= 1


def test_an_autocast_child_steps_in_bfloat16_near_the_float32_loss():
    """benchmarks/host.py times PyTorch's bf16 autocast beside fastnn's bf16: the child runs its
    step under torch.autocast, so its loss is the float32 one to bf16 precision, not equal to it."""
    pytest.importorskip("torch")
    net = bench.NETWORKS["digits"]
    x, y, weights = bench.make_data(net, 256)
    float32, bf16 = (bench.torch_in_child({}, autocast=flag)(net, x, y, weights) for flag in (False, True))
    try:
        a, b = float32(), bf16()
        assert a != b and abs(a - b) < 3e-2 * abs(a)
        assert bf16.timed(2) > 0
    finally:
        float32.close(), bf16.close()


@pytest.mark.slow  # every configuration of benchmarks/host.py on a small case, PyTorch included
def test_the_host_benchmark_runs_end_to_end(tmp_path):
    pytest.importorskip("torch")
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "host.py"
    # a timed verdict on 2 repetitions is noise on a shared host: the test proves the harness runs,
    # `--mkl-margin inf` keeps the speed judgement for benchmark runs
    done = subprocess.run([sys.executable, str(script), "--reps", "2", "--cases", "digits:512",
                           "--mkl-margin", "inf"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| digits | 512 |" in done.stdout and "the loop's speed" in done.stdout
    assert "flags:" in done.stdout.splitlines()[0]


def test_a_step_after_pytorchs_repetition_first_takes_an_untimed_step(monkeypatch):
    """The harness rests while the child runs; its BLAS threads fall asleep, which a training
    loop never sees: the next implementation takes one untimed step before it is timed."""
    pytest.importorskip("torch")
    monkeypatch.setattr(bench, "_calls_per_rep", lambda step, device: 1)
    calls = []

    def recording(net, x, y, weights):
        step = bench.fastnn_step("numpy", False)(net, x, y, weights)

        def run():
            calls.append("step")
            return step()
        return run

    impls = {"fastnn-numpy-pure": ("cpu", recording), "torch-eager": ("cpu", bench.torch_in_child({}))}
    bench.time_case("tiny", 16, impls, reps=2, warmup=1)
    # the first loss, repetition 1 (pure, then PyTorch), repetition 2 (PyTorch, an untimed step, pure)
    assert len(calls) == 1 + 1 + 2


def test_a_child_that_dies_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"the PyTorch child process ended \(exit status [1-9]"):
        bench.RemoteStep("no-such-network", 64, {})


@pytest.mark.slow  # PyTorch's child processes, per case: run by .ci/run with torch installed
def test_quick_run_with_pytorch_times_it_for_every_case(tmp_path):
    pytest.importorskip("torch")
    assert bench.main(["--quick", "--networks", "tiny", "--reps", "2", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "bench.json").read_text())
    for case in results["cases"]:
        assert case["ms"]["torch-eager"] > 0 and case["ms"]["torch-eager-tuned-malloc"] > 0
    assert results["machine"]["torch_threads"] >= 1
    assert all(case["fused_over_torch"] > 0 for case in results["cases"])
    assert "each of its repetitions timed beside fastnn's" in (tmp_path / "bench.md").read_text()


@pytest.mark.slow  # the harness's own implementations, each compiled: run by .ci/run
@pytest.mark.parametrize("network", sorted(bench.NETWORKS))
def test_reference_implementations_agree_on_first_loss(network):
    """The tutorial-style NumPy step and fastnn compute the same loss from the same weights."""
    net = bench.NETWORKS[network]
    x, y, weights = bench.make_data(net, 64)
    fused = bench.fastnn_step("numpy", True)(net, x, y, weights)()
    tutorial = bench.numpy_tutorial_step(net, x, y, weights)()
    assert float(fused) == pytest.approx(tutorial, rel=1e-4)


def test_unknown_network_is_an_error():
    with pytest.raises(SystemExit):
        bench.main(["--networks", "resnet"])


def test_fastnn_bench_subcommand_reaches_the_harness(capsys):
    from fastnn import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "usage: fastnn bench" in capsys.readouterr().out


@pytest.mark.parametrize("network", sorted(bench.NETWORKS))
def test_the_bound_multiplies_every_product_of_the_step_and_counts_its_flops(network):
    net = bench.NETWORKS[network]
    x, _, weights = bench.make_data(net, 8)
    products = bench.step_products(net, x, weights)
    layers = len(net.widths) - 1
    assert len(products) == 3 * layers - 1  # forward and dW per layer, dx but the first layer's
    assert [p[2].shape for p in products[layers::2]] == [w.shape for w in weights[-2::-2]]  # the dW
    assert sum(2 * a.shape[0] * a.shape[1] * b.shape[1] for a, b, _ in products) == bench.step_flops(net, 8)


def test_the_lenet_benchmark_times_fused_pure_and_torch_from_the_same_first_loss(tmp_path, capsys):
    pytest.importorskip("torch")
    assert bench.main(["--networks", "lenet", "--quick", "--reps", "2", "--out", str(tmp_path)]) == 0
    table = (tmp_path / "lenet.md").read_text()
    assert "| lenet | 64 |" in table and "fused / torch" in table
    from fastnn import bench_cnn

    case = bench_cnn.time_batch(32, reps=1)
    assert case["first_loss"]["fastnn-fused"] == pytest.approx(case["first_loss"]["torch-eager"], rel=1e-4)


def test_a_wrong_lenet_step_is_refused(monkeypatch):
    from fastnn import bench_cnn

    monkeypatch.setattr(bench_cnn, "fastnn_step", lambda x, y, w, kernels: (lambda: 123.0) if kernels
                        else (lambda: 2.3))
    with pytest.raises(RuntimeError, match="fastnn-fused computed loss 123"):
        bench_cnn.time_batch(8, reps=1, torch=False)
