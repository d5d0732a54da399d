from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from pydantic import BaseModel

from tokenopt.dialects import OpenAIChatDialect, RequestView
from tokenopt.exceptions import ConfigError, PluginError, PolicyRejected
from tokenopt.pipeline import (
    Pipeline,
    Plugin,
    PluginContext,
    build_plugins,
    discover,
    validate_plugin_class,
)


class Upper:
    name: ClassVar[str] = "upper"
    enabled_by_default: ClassVar[bool] = True

    class Settings(BaseModel):
        suffix: str = "!"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView:
        ctx.notes["system"] = "upper"
        parts = [dataclasses.replace(p, text=p.text.upper() + self.settings.suffix) for p in view.system]
        return dataclasses.replace(view, system=parts)


class NoSettings(BaseModel):
    pass


class Broken:
    name: ClassVar[str] = "broken"
    enabled_by_default: ClassVar[bool] = False
    Settings: ClassVar[type[BaseModel]] = NoSettings

    def __init__(self, settings: BaseModel) -> None:
        pass

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView:
        raise RuntimeError("boom")


class Refuse(Broken):
    name: ClassVar[str] = "refuse"

    async def on_request(self, view: RequestView, ctx: PluginContext) -> RequestView:
        raise PolicyRejected("too expensive", status=422, rule="r1")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


REGISTRY: dict[str, type[Plugin]] = {"upper": Upper, "broken": Broken, "refuse": Refuse}


def view() -> RequestView:
    body = {"model": "gpt-4.1", "messages": [{"role": "system", "content": "hi"},
                                             {"role": "user", "content": "q"}]}
    return OpenAIChatDialect().parse(body, tenant="t", headers={})


def context(plugin: str) -> PluginContext:
    return PluginContext(store=cast(Any, None), counter=cast(Any, None))


def test_plugins_run_in_the_configured_order_then_by_name() -> None:
    tables = {"broken": {"enabled": True}, "refuse": {"enabled": True}}
    plugins = build_plugins(REGISTRY, tables, order=["upper"])
    assert [p.name for p in plugins] == ["upper", "broken", "refuse"]
    plugins = build_plugins(REGISTRY, tables, order=["refuse", "upper"])
    assert [p.name for p in plugins] == ["refuse", "upper", "broken"]


def test_plugins_follow_their_default_unless_the_table_says_otherwise() -> None:
    assert [p.name for p in build_plugins(REGISTRY, {}, order=[])] == ["upper"]
    assert build_plugins(REGISTRY, {"upper": {"enabled": False}}, order=[]) == []


def test_each_plugin_validates_its_own_table() -> None:
    plugin = build_plugins(REGISTRY, {"upper": {"suffix": "?"}}, order=[])[0]
    assert cast(Upper, plugin).settings.suffix == "?"
    with pytest.raises(ConfigError, match="plugin 'upper' has no setting 'sufix'"):
        build_plugins(REGISTRY, {"upper": {"sufix": "?"}}, order=[])
    with pytest.raises(ConfigError, match="plugin 'upper'"):
        build_plugins(REGISTRY, {"upper": {"suffix": 3}}, order=[])
    with pytest.raises(ConfigError, match="'enabled' must be true or false"):
        build_plugins(REGISTRY, {"upper": {"enabled": "yes"}}, order=[])


def test_an_unknown_plugin_name_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="plugin 'uper' is not installed"):
        build_plugins(REGISTRY, {"uper": {}}, order=[])


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"name": None}, "no string 'name'"),
        ({"Settings": dict}, "pydantic 'Settings'"),
        ({"on_request": lambda self, view, ctx: view}, "async def on_request"),
        ({"on_response": lambda self, response, ctx: None}, "'on_response' must be async"),
    ],
)
def test_plugin_classes_that_break_the_contract_fail_at_registration(
    attrs: dict[str, Any], message: str
) -> None:
    bad = type("Bad", (Upper,), attrs)
    with pytest.raises(PluginError, match=message):
        validate_plugin_class(bad)


@pytest.mark.anyio
async def test_a_pipeline_applies_plugins_and_collects_their_notes() -> None:
    result = await Pipeline(build_plugins(REGISTRY, {}, order=[])).run(view(), context)
    assert result.failed is None
    assert [p.text for p in result.view.system] == ["HI!"]
    assert result.notes == {"upper": {"system": "upper"}}


@pytest.mark.anyio
async def test_a_failing_plugin_fails_open_and_is_named() -> None:
    pipeline = Pipeline(build_plugins(REGISTRY, {"broken": {"enabled": True}}, order=[]))
    result = await pipeline.run(view(), context)
    assert result.failed == "broken"
    assert isinstance(result.error, RuntimeError)


@pytest.mark.anyio
async def test_strict_pipelines_raise_instead() -> None:
    pipeline = Pipeline(build_plugins(REGISTRY, {"broken": {"enabled": True}}, order=[]), strict=True)
    with pytest.raises(RuntimeError, match="boom"):
        await pipeline.run(view(), context)


@pytest.mark.anyio
async def test_a_policy_refusal_is_not_swallowed_by_fail_open() -> None:
    pipeline = Pipeline(build_plugins(REGISTRY, {"refuse": {"enabled": True}}, order=[]))
    with pytest.raises(PolicyRejected, match="too expensive"):
        await pipeline.run(view(), context)


def test_plugins_are_discovered_through_the_entry_point_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "demo_plugin.py").write_text(
        "from tests.test_pipeline import Upper as Plugin\n"
    )
    dist = tmp_path / "demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[tokenopt.test_plugins]\nupper = demo_plugin:Plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert discover("tokenopt.test_plugins") == {"upper": Upper}
    (dist / "entry_points.txt").write_text("[tokenopt.test_plugins]\nother = demo_plugin:Plugin\n")
    with pytest.raises(PluginError, match="calls itself 'upper'"):
        discover("tokenopt.test_plugins")
    (dist / "entry_points.txt").write_text("[tokenopt.test_plugins]\nx = missing_module:Plugin\n")
    with pytest.raises(PluginError, match="plugin 'x' failed to load"):
        discover("tokenopt.test_plugins")
    sys.modules.pop("demo_plugin", None)
