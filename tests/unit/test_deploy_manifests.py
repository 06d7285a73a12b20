"""The deployment manifests in deploy/ cannot run here, so they are checked against the code: parsed with PyYAML,
every ``CREDITMESH_*`` variable they set must be a field of ``api.settings.Settings`` (pydantic-settings ignores an
unknown one silently), and the settings each process would start with — secrets filled with fresh strong values —
must pass ``Settings``' own production validation (which refuses any required secret left at its local default).
The commands, ports and probes must agree with the CLI and the health endpoints, and nginx's wait for an answer with
the API's longest own wait (an accept's). The one-off commands (compose services under a profile, Kubernetes
CronJobs: the sanctions import a first deployment needs before the API can be ready) are checked the same way."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from api.cli import build_parser
from api.cli.serve import answer_timeout
from api.settings import ROLE_KEY_FIELDS, Settings
from api.workers import WORKERS, enabled_workers
from compliance.adverse_action import LOCAL_CREDITOR, MANIFEST_PLACEHOLDER_CREDITOR

pytestmark = pytest.mark.unit

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PREFIX = "CREDITMESH_"
#: set from a Secret only where the operator has one: no tokens are issued without the signing key; reporting reads
#: go to the primary without a read-only URL
OPTIONAL = {"CREDITMESH_JWT_SIGNING_KEY", "CREDITMESH_DATABASE_READONLY_URL"}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


@dataclass
class Process:
    """One container of a manifest: its arguments and the environment it would start with."""

    where: str
    args: list[str]
    env: dict[str, str]
    files: dict[str, str]  # path inside the container → content, for the mounted files the manifests provide
    port: int | None  # the port it serves and is probed on; None: a one-off command (a sanctions import)
    ready: str | None = None  # the path its readiness is probed on (compose: its healthcheck)
    mounts: tuple[str, ...] = ()  # the directories mounted into the container


def secret_value(name: str) -> str:
    """A fresh, strong value of the shape the setting expects (what an operator puts in the Secret or .env)."""
    field = name.removeprefix(PREFIX).lower()
    if field in ROLE_KEY_FIELDS:
        return "0x" + secrets.token_hex(32)
    if field in {"pii_master_key", "inputs_hash_key"}:
        return secrets.token_hex(32)
    if field == "database_url":
        return "postgresql://creditmesh:" + secrets.token_hex(16) + "@db.internal:5432/creditmesh"
    if field == "redis_url":
        return "redis://redis.internal:6379/0"
    if field == "key_store_url":
        return "kms://eu-west-1"
    if field == "http_lenders":
        secret = secrets.token_urlsafe(32)
        bank = {"provider_id": "bank-a", "base_url": "https://pqp.bank-a.example", "secret": secret}
        # the creditor it lends as, which production asks of every lender (its notices name it)
        return json.dumps([bank | {"legal_name": "Bank A, N.A.", "address": "1 Bank Street, Springfield, IL 62701"}])
    if field == "creditor_telephone":
        return f"+1 202 555 0{secrets.randbelow(1000):03d}"
    if field.endswith("_provider_url"):
        return f"https://{field.removesuffix('_provider_url')}.example.com/v1"
    return secrets.token_urlsafe(32)


#: the creditor settings the manifests may ship as placeholders (``MANIFEST_PLACEHOLDER_CREDITOR``), which production
#: refuses: what the operator replaces with its own before deploying
PLACEHOLDERS: dict[str, str] = {
    f"{PREFIX}CREDITOR_NAME": MANIFEST_PLACEHOLDER_CREDITOR.name,
    f"{PREFIX}CREDITOR_ADDRESS": MANIFEST_PLACEHOLDER_CREDITOR.address,
    f"{PREFIX}CREDITOR_TELEPHONE": MANIFEST_PLACEHOLDER_CREDITOR.telephone or "",
}
OPERATOR_CREDITOR = {
    f"{PREFIX}CREDITOR_NAME": "Prairie State Credit Platform, Inc.",
    f"{PREFIX}CREDITOR_ADDRESS": "1 Main Street, Springfield, IL 62701",
    f"{PREFIX}CREDITOR_TELEPHONE": "+1 217 555 0142",
}


def edited_by_the_operator(env: dict[str, str]) -> dict[str, str]:
    """``env`` with each placeholder creditor setting replaced by the operator's own, as the manifest asks."""
    return {name: OPERATOR_CREDITOR[name] if PLACEHOLDERS.get(name) == value else value for name, value in env.items()}


def _production_env(process: Process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process's environment as this machine's: its chains file written under ``tmp_path``, no other
    ``CREDITMESH_*`` variable set."""
    env = dict(process.env)
    chains_file = env[f"{PREFIX}CHAINS_FILE"]
    assert chains_file in process.files, f"{process.where}: the chains file {chains_file} is not mounted"
    local_chains = tmp_path / "chains.json"
    local_chains.write_text(process.files[chains_file])
    env[f"{PREFIX}CHAINS_FILE"] = str(local_chains)
    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _load(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _interpolate(value: str, env_file: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if op == "?":
            assert name in env_file, f"{name} is required by docker-compose.yml but not listed in deploy/env.example"
            return secret_value(name)
        if op == "-":
            return arg
        raise AssertionError(f"${{{name}}} without a default or an error message in docker-compose.yml")

    return _INTERPOLATION.sub(one, value)


def _env_file() -> dict[str, str]:
    lines = (DEPLOY / "env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    return {name: service for name, service in services.items() if "creditmesh" in service.get("image", "")}


def _compose_process(name: str, service: dict[str, Any], env_file: dict[str, str]) -> Process:
    env = {key: _interpolate(str(value), env_file) for key, value in service["environment"].items()}
    mounts = [volume.split(":") for volume in service["volumes"]]
    files = {
        f"{target}/{path.relative_to(DEPLOY / source).as_posix()}": path.read_text()
        for source, target, *_ in mounts
        for path in (DEPLOY / source).rglob("*")
        if path.is_file()
    }
    port, ready = None, None
    if "healthcheck" in service:
        probe = service["healthcheck"]["test"][-1].split("127.0.0.1:")[1]
        port, ready = int(probe.split("/")[0]), "/" + probe.split("/", 1)[1].split("'")[0]
    targets = tuple(target for _, target, *_ in mounts)
    return Process(f"compose {name}", service["command"], env, files, port, ready, targets)


def compose_processes() -> dict[str, Process]:
    """The services `up` starts, each serving and probed."""
    env_file = _env_file()
    return {
        name: _compose_process(name, service, env_file)
        for name, service in _compose_services().items()
        if not service.get("profiles")
    }


def compose_one_offs() -> dict[str, Process]:
    """The services `up` leaves out (a profile), each run as `docker compose run --rm <name>`."""
    env_file = _env_file()
    return {
        name: _compose_process(name, service, env_file)
        for name, service in _compose_services().items()
        if service.get("profiles")
    }


def _kubernetes_documents() -> list[dict[str, Any]]:
    return [document for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for document in _load(path)]


def _pod_process(where: str, pod: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> Process:
    (container,) = pod["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("creditmesh-secrets", entry["name"]), entry
        if not ref.get("optional"):
            env[entry["name"]] = secret_value(entry["name"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = {}
    for mount in container["volumeMounts"]:
        config_map = volumes[mount["name"]].get("configMap")
        if config_map and config_map["name"] in config_maps:  # creditmesh-deployments: the operator's records
            for key, content in config_maps[config_map["name"]].items():
                files[f"{mount['mountPath']}/{key}"] = content
    mounts = tuple(mount["mountPath"] for mount in container["volumeMounts"])
    if "readinessProbe" not in container:
        return Process(where, container["args"], env, files, None, None, mounts)
    (port,) = container["ports"]
    ready = container["readinessProbe"]["httpGet"]
    assert ready["port"] == port["name"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    return Process(where, container["args"], env, files, port["containerPort"], ready["path"], mounts)


def _config_maps(documents: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}


def kubernetes_processes() -> dict[str, Process]:
    """The Deployments' containers, each serving and probed."""
    documents = _kubernetes_documents()
    return {
        d["metadata"]["name"]: _pod_process(
            f"kubernetes {d['metadata']['name']}", d["spec"]["template"]["spec"], _config_maps(documents)
        )
        for d in documents
        if d["kind"] == "Deployment"
    }


def _cron_jobs() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _kubernetes_documents() if d["kind"] == "CronJob"}


def kubernetes_one_offs() -> dict[str, Process]:
    """The CronJobs' containers (each also run at once with `kubectl create job --from=cronjob/<name>`)."""
    config_maps = _config_maps(_kubernetes_documents())
    return {
        name: _pod_process(f"kubernetes {name}", job["spec"]["jobTemplate"]["spec"]["template"]["spec"], config_maps)
        for name, job in _cron_jobs().items()
    }


def serving_processes() -> list[Process]:
    return [*compose_processes().values(), *kubernetes_processes().values()]


def all_processes() -> list[Process]:
    return [*serving_processes(), *compose_one_offs().values(), *kubernetes_one_offs().values()]


@pytest.mark.parametrize("process", all_processes(), ids=lambda p: p.where)
def test_every_variable_set_is_a_setting(process: Process) -> None:
    for name in process.env:
        if name.startswith(PREFIX):
            field = name.removeprefix(PREFIX).lower().split("__")[0]
            assert field in Settings.model_fields, f"{process.where} sets {name}, which api/settings.py does not read"


@pytest.mark.parametrize("process", all_processes(), ids=lambda p: p.where)
def test_production_settings_are_complete_and_accepted(
    process: Process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process's own validation passes in production: every required secret set (none at its local default),
    a chains file of non-devnet chains, real identity providers; and what several processes need to share. The
    placeholder creditor a manifest ships is the operator's to replace (``edited_by_the_operator``)."""
    env = _production_env(replace(process, env=edited_by_the_operator(process.env)), tmp_path, monkeypatch)

    settings = Settings()

    assert settings.environment == "production"
    assert settings.resolved_database_url.startswith("postgresql://"), "several processes need one PostgreSQL"
    assert settings.redis_url, "breaker state, rate limits and velocity are shared through Redis"
    assert settings.key_store_url, "the default key store is a file inside one container"
    assert {field for field in ("relayer_key", "quote_signer_key", "risk_signer_key") if getattr(settings, field)}
    # the adverse-action notices name the creditor (12 CFR 1002.9(a)(2)), never the local runs' placeholder
    assert settings.creditor_name != LOCAL_CREDITOR.name
    assert settings.creditor_address != LOCAL_CREDITOR.address
    assert settings.creditor_telephone != LOCAL_CREDITOR.telephone  # whom to call for the statement of reasons
    assert {f"{PREFIX}ECOA_AGENCY_NAME", f"{PREFIX}ECOA_AGENCY_ADDRESS"} <= set(env), "the agency is the creditor's own"


@pytest.mark.parametrize("process", kubernetes_processes().values(), ids=lambda p: p.where)
def test_production_refuses_the_configmap_s_placeholder_creditor_unedited(
    process: Process, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configmap ships a made-up creditor ("Example Credit Platform, Inc.") for the operator to replace, and
    production started on it: an operator who deployed it unedited gave borrowers notices naming a company that does
    not exist. The manifest holds exactly the placeholders production refuses, and is refused with a message naming
    the setting, the value and where it is."""
    shipped = {name: process.env.get(name) for name in PLACEHOLDERS}
    assert shipped == PLACEHOLDERS, "the configmap's creditor and MANIFEST_PLACEHOLDER_CREDITOR must be the same"
    _production_env(process, tmp_path, monkeypatch)

    with pytest.raises(ValidationError) as refused:
        Settings()

    message = str(refused.value)
    assert f"{PREFIX}CREDITOR_NAME is the deployment manifests' placeholder 'Example Credit Platform, Inc.'" in message
    assert "deploy/kubernetes/configmap.yaml" in message
    for name, placeholder in PLACEHOLDERS.items():  # each one left alone is refused too
        for setting, own in OPERATOR_CREDITOR.items():
            monkeypatch.setenv(setting, placeholder if setting == name else own)
        with pytest.raises(ValidationError, match=f"{name} is the deployment manifests' placeholder"):
            Settings()


@pytest.mark.parametrize("processes", [compose_processes, kubernetes_processes], ids=["compose", "kubernetes"])
def test_api_replicas_run_no_workers_and_one_service_runs_them_all(processes: Any) -> None:
    found: dict[str, Process] = processes()
    workers = {name: enabled_workers(p.env[f"{PREFIX}WORKERS"]) for name, p in found.items()}
    api = [name for name in found if name.endswith("api")]
    assert api
    assert all(workers[name] == set() for name in api)
    assert set().union(*workers.values()) == set(WORKERS)
    for name, enabled in workers.items():
        if enabled:
            assert {f"{PREFIX}KEEPER_KEY", f"{PREFIX}AUDIT_ANCHOR_KEY"} <= set(found[name].env), name


@pytest.mark.parametrize("process", serving_processes(), ids=lambda p: p.where)
def test_the_command_is_the_cli_serving_on_the_probed_port(process: Process) -> None:
    args = build_parser().parse_args(process.args)
    assert (args.command, args.host, args.port) == ("serve", "0.0.0.0", process.port)  # noqa: S104 - in a container


def test_compose_and_kubernetes_set_the_same_settings() -> None:
    def names(processes: dict[str, Process]) -> set[str]:
        return {name for p in processes.values() for name in p.env if name.startswith(PREFIX)} - OPTIONAL

    assert names(compose_processes()) == names(kubernetes_processes())


def test_the_service_and_the_balancer_reach_the_api_pods() -> None:
    documents = _kubernetes_documents()
    (service,) = [d for d in documents if d["kind"] == "Service"]
    (api,) = [d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "creditmesh-api"]
    template = api["spec"]["template"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert api["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    port_names = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert f"server api:{compose_processes()['api'].port} resolve;" in nginx


def test_every_process_can_take_a_read_only_database_url_and_falls_back_to_the_primary() -> None:
    name = f"{PREFIX}DATABASE_READONLY_URL"
    for process in compose_processes().values():
        assert process.env[name] == "", f"{process.where}: empty unless the operator sets a replica"
    for deployment in (d for d in _kubernetes_documents() if d["kind"] == "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (entry,) = [e for e in container["env"] if e["name"] == name]
        ref = entry["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"], ref["optional"]) == ("creditmesh-secrets", name, True)
    assert Settings(database_readonly_url="").database_readonly_url == ""


def test_nginx_waits_for_an_answer_past_an_accept_s_own_wait() -> None:
    """An accept may wait ``CREDITMESH_ACCEPT_WAIT_SECONDS`` before it answers (409 "in progress"): nginx must wait
    as long as ``creditmesh serve``'s own balancer does, or the borrower gets nginx's 504 instead of that answer."""
    name = f"{PREFIX}ACCEPT_WAIT_SECONDS"
    api = compose_processes()["api"]
    accept_wait = float(api.env.get(name, Settings.model_fields["accept_wait_seconds"].default))
    (read_timeout,) = re.findall(r"proxy_read_timeout (\d+)s;", (DEPLOY / "nginx.conf").read_text())
    assert float(read_timeout) >= answer_timeout(accept_wait), f"nginx gives up before an accept's {accept_wait:g} s"


@pytest.mark.parametrize(
    ("serving", "one_offs"), [(compose_processes, compose_one_offs), (kubernetes_processes, kubernetes_one_offs)]
)
def test_only_the_api_waits_for_sanctions_lists_in_date_and_a_one_off_imports_them(serving: Any, one_offs: Any) -> None:
    """/readyz is 503 while a sanctions list is past its maximum age (14 days here), and the image ships older lists:
    a fresh deployment never became ready — compose never started the API (it waited for the workers' /readyz) nor
    the balancer, and no pod was Ready — until someone ran `creditmesh sanctions import`, which neither the manifests
    nor the README said, nor how in a container. The API must not quote on stale lists (its readiness is /readyz);
    the workers screen no one (theirs is /healthz); and each form has the import, run like the manifests' others."""
    processes: dict[str, Process] = serving()
    for name, process in processes.items():
        assert process.ready == ("/readyz" if name.endswith("api") else "/healthz"), process.where
    assert all(int(p.env[f"{PREFIX}SANCTIONS_NAME_LIST_MAX_AGE_DAYS"]) <= 31 for p in processes.values())

    (importer,) = one_offs().values()
    args = build_parser().parse_args(importer.args)
    assert (args.command, args.sanctions_command, args.sdn) == ("sanctions", "import", None)
    assert args.xml.parent.as_posix() in importer.mounts, f"{importer.where}: {args.xml} is not in a mounted directory"
    api = next(p for name, p in processes.items() if name.endswith("api"))
    settings = {n for n in api.env if n.startswith(PREFIX)} - {f"{PREFIX}WORKERS"}
    assert {n for n in importer.env if n.startswith(PREFIX)} == settings, "the import stores where the API reads"


def test_compose_s_first_steps_import_the_lists_before_up() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    service = compose["services"]["sanctions-import"]
    assert service["profiles"], "not started by `up`: a one-off"
    (source,) = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == "/import"]
    assert (DEPLOY / source).is_dir(), f"{source}, where the operator puts SDN.XML, is not in deploy/"
    xml = build_parser().parse_args(service["command"]).xml
    assert xml.parent.as_posix() == "/import"
    steps = [line.removeprefix("#").strip() for line in (DEPLOY / "docker-compose.yml").read_text().splitlines()]
    download = next(
        i
        for i, line in enumerate(steps)
        if line.startswith("curl ") and f"deploy/{source.removeprefix('./')}/{xml.name} " in line
    )
    run = next(
        i for i, line in enumerate(steps) if line.startswith("docker compose") and "run --rm sanctions-import" in line
    )
    up = next(i for i, line in enumerate(steps) if line.startswith("docker compose") and " up -d" in line)
    assert download < run < up


def test_kubernetes_fetches_the_lists_for_its_import_and_says_how_to_run_it_at_once() -> None:
    (name, job), (importer,) = *_cron_jobs().items(), kubernetes_one_offs().values()
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (download,) = pod["initContainers"]
    xml = build_parser().parse_args(importer.args).xml
    assert download["command"][-1] == xml.as_posix()
    (shared,) = [m["name"] for m in download["volumeMounts"] if m["mountPath"] == xml.parent.as_posix()]
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == shared)
    assert download["command"][-2].startswith("https://")
    manifest = next(p for p in (DEPLOY / "kubernetes").glob("*.yaml") if f"name: {name}\n" in p.read_text())
    assert f"kubectl create job --from=cronjob/{name} " in manifest.read_text()
