"""The committed endpoint policies are valid and keep the documented defaults."""

from pathlib import Path

from tritonlib.autoscaling import load_scaling_config, render_variant

ENDPOINTS = Path(__file__).resolve().parent / "endpoints.toml"


def test_every_stage_has_a_valid_variant() -> None:
    config = load_scaling_config(ENDPOINTS)
    for stage in ("staging", "production"):
        variants = config.for_stage(stage)
        assert variants, f"no variant for {stage}"
        for variant in variants:
            rendered = render_variant(variant)
            target = rendered["register_scalable_target"]
            assert target["MinCapacity"] <= target["MaxCapacity"]
            assert rendered["put_scaling_policy"]
