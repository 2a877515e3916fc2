"""compose.yaml, read as Docker Compose reads it (Docker is not at hand in the tests): the default
service is unchanged, and the cluster profile runs two proxies behind the repo's own nginx site file on
one PostgreSQL and one Redis, with settings the proxy accepts."""
import os
import re
import shlex

import pytest
import yaml

from config import load_settings
from tests.processes import ROOT

SITE = "deploy/nginx-gemini-proxy.conf"
PROXIES = ("proxy-a", "proxy-b")


@pytest.fixture(scope="module")
def compose():
    with open(os.path.join(ROOT, "compose.yaml")) as handle:
        return yaml.safe_load(handle)


def interpolated(value):
    """${NAME:-default} as Compose fills it in with NAME unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def in_profile(compose, profile):
    return {name for name, service in compose["services"].items() if profile in service.get("profiles", [])}


def test_docker_compose_up_still_runs_the_single_proxy_alone(compose):
    assert [name for name, service in compose["services"].items() if not service.get("profiles")] == ["proxy"]
    assert compose["services"]["proxy"]["environment"]["DATABASE_URL"].startswith("sqlite:")


def test_the_cluster_profile_runs_two_proxies_nginx_postgres_and_redis(compose):
    services = compose["services"]
    assert in_profile(compose, "cluster") == {*PROXIES, "nginx", "postgres", "redis"}
    for service in services.values():  # everything named exists
        for name in service.get("depends_on", []):
            assert name in services
        for network in service.get("networks", []):
            assert network in compose["networks"]
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in compose["volumes"]
    assert set(services["nginx"]["depends_on"]) == set(PROXIES)


def test_each_proxy_shares_through_postgres_and_redis_and_keeps_its_own_spool(compose):
    services = compose["services"]
    postgres = services["postgres"]["environment"]
    volumes = set()
    for name in PROXIES:
        env = {key: interpolated(str(value)) for key, value in services[name]["environment"].items()}
        settings = load_settings(env)  # what the proxy refuses at start, this would too
        assert settings["SQLALCHEMY_DATABASE_URI"] == (
            f"postgresql+psycopg://{postgres['POSTGRES_USER']}:{interpolated(postgres['POSTGRES_PASSWORD'])}"
            f"@postgres:5432/{postgres['POSTGRES_DB']}")
        for setting in ("RATE_LIMIT_STORAGE_URL", "QUOTA_STORAGE_URL", "COOLDOWN_STORAGE_URL", "CACHE_STORAGE_URL"):
            assert settings[setting].startswith("redis://redis:6379/"), setting
        assert settings["SPOOL_DIR"] == "/data/spool" and env["HOST"] == "0.0.0.0"
        (volume,) = services[name]["volumes"]
        assert volume.endswith(":/data")
        volumes.add(volume)
        assert set(services[name]["depends_on"]) == {"postgres", "redis"}
        assert services[name]["restart"] == "unless-stopped"  # a dead instance replays its spool on restart
    assert len(volumes) == 2  # a spool each: a live worker's files are its own


def test_nginx_serves_the_repos_site_file_with_its_upstream_made_the_two_proxies(compose):
    nginx = compose["services"]["nginx"]
    (mount,) = nginx["volumes"]
    source, target, mode = mount.split(":")
    assert source == f"./{SITE}" and mode == "ro"
    command = nginx["command"][-1]
    (expression,) = re.findall(r"sed '([^']*)'", command)
    assert target in command and "/etc/nginx/conf.d/" in command
    pattern, replacement = re.fullmatch(r"s/([^/]*)/([^/]*)/", expression).groups()
    with open(os.path.join(ROOT, SITE)) as handle:
        site = handle.read()
    assert site.count(pattern) == 1  # the one upstream line the e2e tests replace too
    made = site.replace(pattern, replacement)
    upstream = re.search(r"upstream gemini_proxy \{(.*?)\}", made, re.S).group(1)
    servers = [line.strip() for line in upstream.split(";") if line.strip().startswith("server")]
    assert servers == [f"server {name}:8000" for name in PROXIES]
    assert shlex.split(command)[:1] == ["sed"] and "daemon off;" in command
    assert nginx["ports"] == ["8080:80"] and "listen 80;" in site
