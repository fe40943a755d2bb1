"""Which callback URLs the DIP will call (E2E 4.6.2; API contract section 3; dip.egress.url_safety).

Outside DEV a participant's callback URL must not let it make the DIP call into its own network
(SSRF): https on the standard port only, and every address the name resolves to must be public.
The resolver is a fake here: a dict from host name to addresses (IP literals resolve to themselves).
"""

from __future__ import annotations

import ipaddress

import pytest

from dip.egress.url_safety import MAX_URL_LENGTH, callback_url_problem

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1::1"

HOSTS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC_V4],
    "v6.example.com": [PUBLIC_V6],
    "dual.example.com": [PUBLIC_V4, PUBLIC_V6],
    "localhost": ["127.0.0.1", "::1"],
}


class FakeResolver:
    def __init__(self, hosts: dict[str, list[str]]) -> None:
        self.hosts = hosts
        self.asked: list[str] = []

    def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return list(self.hosts.get(host, []))


def problem(url: str, environment: str = "PRD", hosts: dict[str, list[str]] | None = None) -> str | None:
    return callback_url_problem(url, environment, FakeResolver(HOSTS if hosts is None else hosts))


# ---------------------------------------------------------------------------------------------
# accepted


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/dip/callback",
        "https://hooks.example.com",
        "https://hooks.example.com:443/dip",
        "https://HOOKS.Example.COM/dip?channel=IF-001&x=1",
        "https://v6.example.com/hook",
        "https://dual.example.com/hook",
        f"https://{PUBLIC_V4}/hook",
        f"https://[{PUBLIC_V6}]/hook",
    ],
)
def test_prd_accepts_https_to_public_addresses(url: str) -> None:
    assert problem(url) is None


def test_the_resolver_is_asked_for_the_host_name() -> None:
    resolver = FakeResolver(HOSTS)
    assert callback_url_problem("https://hooks.example.com:443/a/b?c=d", "PRD", resolver) is None
    assert resolver.asked == ["hooks.example.com"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost:9000/dip/callback",
        "http://[::1]:8443/hook",
        "https://localhost:8443/hook",
        "http://10.0.0.5:80/hook",
        "http://hooks.example.com/hook",
        "https://hooks.example.com/hook",
    ],
)
def test_dev_accepts_http_loopback_and_ports(url: str) -> None:
    assert problem(url, "DEV") is None


# ---------------------------------------------------------------------------------------------
# refused everywhere or outside DEV


@pytest.mark.parametrize("environment", ["PRD", "SIT", "UAT", "PREPROD"])
@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/hook", "ftp://hooks.example.com/hook", "hooks.example.com/hook", "//x/y"]
)
def test_outside_dev_only_https(url: str, environment: str) -> None:
    message = problem(url, environment)
    assert message is not None and "https" in message


@pytest.mark.parametrize("url", ["ftp://localhost/hook", "file:///etc/passwd", "gopher://localhost:70/x"])
def test_dev_still_refuses_other_schemes(url: str) -> None:
    assert problem(url, "DEV") is not None


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com:8443/hook", "https://hooks.example.com:80/hook", "https://hooks.example.com:0/hook"],
)
def test_prd_refuses_a_non_standard_port(url: str) -> None:
    message = problem(url)
    assert message is not None and "port" in message


@pytest.mark.parametrize("url", ["https://hooks.example.com:99999/hook", "https://hooks.example.com:abc/hook"])
def test_an_unparseable_port_is_refused(url: str) -> None:
    for environment in ("DEV", "PRD"):
        assert problem(url, environment) is not None


@pytest.mark.parametrize("environment", ["DEV", "PRD"])
@pytest.mark.parametrize(
    "url",
    [
        "https://user@hooks.example.com/hook",
        "https://user:secret@hooks.example.com/hook",
        "https://:secret@hooks.example.com/hook",
        "https://hooks.example.com@127.0.0.1/hook",
    ],
)
def test_userinfo_is_refused(url: str, environment: str) -> None:
    message = problem(url, environment)
    assert message is not None and "user name or password" in message


@pytest.mark.parametrize("environment", ["DEV", "PRD"])
def test_fragments_are_refused(environment: str) -> None:
    message = problem("https://hooks.example.com/hook#frag", environment)
    assert message is not None and "fragment" in message


@pytest.mark.parametrize("environment", ["DEV", "PRD"])
def test_urls_over_250_characters_are_refused(environment: str) -> None:
    prefix = "https://hooks.example.com/"
    at_limit = prefix + "a" * (MAX_URL_LENGTH - len(prefix))
    assert len(at_limit) == 250
    assert problem(at_limit, environment) is None
    message = problem(at_limit + "a", environment)
    assert message is not None and "250" in message


@pytest.mark.parametrize("environment", ["DEV", "PRD"])
@pytest.mark.parametrize("url", ["https://nowhere.invalid/hook", "https:///hook", "https://:443/hook"])
def test_hosts_that_do_not_resolve_are_refused(url: str, environment: str) -> None:
    assert problem(url, environment) is not None


def test_unresolvable_message_names_the_host() -> None:
    message = problem("https://nowhere.invalid/hook")
    assert message is not None and "nowhere.invalid" in message and "resolve" in message


NON_PUBLIC = [
    "127.0.0.1",
    "127.1.2.3",
    "10.0.0.1",
    "10.255.255.254",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.10",
    "169.254.169.254",
    "169.254.0.1",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "::1",
    "::",
    "fc00::1",
    "fd00:ec2::254",
    "fe80::1",
    "fe80::1%eth0",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "ff02::1",
    "ff0e::1",
]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_prd_refuses_a_host_resolving_to_a_non_public_address(address: str) -> None:
    message = problem("https://evil.example.net/hook", hosts={"evil.example.net": [address]})
    assert message is not None and "non-public" in message and address in message


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_prd_refuses_a_host_resolving_partly_to_a_non_public_address(address: str) -> None:
    for addresses in ([PUBLIC_V4, address], [address, PUBLIC_V6], [PUBLIC_V4, PUBLIC_V6, address]):
        message = problem("https://evil.example.net/hook", hosts={"evil.example.net": addresses})
        assert message is not None and address in message


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "192.168.0.1", "169.254.169.254", "[::1]", "[::ffff:10.0.0.1]", "[fe80::1]", "0.0.0.0"],
)
def test_prd_refuses_non_public_ip_literals(address: str) -> None:
    assert problem(f"https://{address}/hook") is not None


@pytest.mark.parametrize("environment", ["PRD", "dev", "Dev", "TEST"])
def test_loopback_is_only_allowed_in_dev_exactly(environment: str) -> None:
    assert problem("https://localhost/hook", environment) is not None


def test_dev_allows_loopback_but_still_needs_a_resolvable_host() -> None:
    assert problem("http://localhost:8000/hook", "DEV") is None
    assert problem("http://unknown.local:8000/hook", "DEV") is not None


@pytest.mark.parametrize("address", ["64:ff9b::a00:1", "2002:a00:1::1", "::a00:1", "::ffff:192.168.1.1",
                                     "2001:0:4136:e378:8000:63bf:f5ff:fffe"])
def test_ipv6_forms_of_private_ipv4_addresses_are_refused_outside_dev(address: str) -> None:
    from dip.egress.url_safety import callback_url_problem

    problem = callback_url_problem("https://sneaky.example/hook", "PRD", lambda host: [address])
    assert problem is not None and "non-public" in problem


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/dip callback", "https://hooks.example.com/dip\tx", "https://hooks.example.com/a\r\nX: y",
    "https://hooks.example.com/a\x00", "https://hooks.example.com/a\x7f", "https://hooks.example.com/caf\u00e9",
])
def test_spaces_control_and_non_ascii_characters_are_refused_in_every_environment(url: str) -> None:
    for environment in ("PRD", "DEV"):
        found = problem(url, environment)
        assert found is not None and "percent-encode" in found
