"""An archive's configuration is the archive's word: restored through the same checks, pools and
quota as vzctl set by the person restoring. What it cannot apply is left out and said."""
from __future__ import annotations

import pytest

from containers.models import Container
from network.models import IPAddress, IPPool

from . import archives as A
from .test_archives import base_tree, restored, stored_backup  # noqa: F401  (base_tree is a fixture)


@pytest.mark.integration
def test_restored_addresses_and_dns_go_through_the_tenants_rules(agent, host, people, acme, other_tenant, plan,
                                                                 base_tree):  # noqa: F811
    IPPool.objects.create(name="acme-net", network="198.51.100.0/24", gateway="198.51.100.1").tenants.add(acme)
    IPPool.objects.create(name="other-net", network="203.0.113.0/24").tenants.add(other_tenant)
    acme.max_ips = 2
    acme.save()
    config = ("hostname: back.test\n"
              "addresses: 198.51.100.20 203.0.113.9 127.0.0.1 198.51.100.1 224.0.0.1 0.0.0.0 junk 198.51.100.21 "
              "198.51.100.22\n"
              "nameservers: fe80::1%eth0 192.0.2.53\n"
              "searchdomain: ok.example\n").encode()
    data = A.compress(base_tree + A.member("./etc/vzdump/pct.conf", config) + A.end())
    backup = stored_backup(host, data, 74101)
    backup.tenant = acme
    backup.save()
    task = restored(backup, people["tadmin"], 74102, plan=plan)
    assert task.status == "ok", task.log
    ct = Container.objects.get(ctid=74102)
    assert sorted(IPAddress.objects.filter(container=ct).values_list("address", flat=True)) == [
        "198.51.100.20", "198.51.100.21"]  # the quota of 2 stops the third
    assert ct.nameservers == ["192.0.2.53"] and ct.searchdomain == "ok.example"
    left_out = "\n".join(task.result["not_restored"])
    for text in ("203.0.113.9 was not restored: 203.0.113.9 is not in an IP pool of tenant acme",
                 "127.0.0.1 was not restored", "198.51.100.1 was not restored", "224.0.0.1 was not restored",
                 "0.0.0.0 was not restored", "junk was not restored", "198.51.100.22 was not restored: Quota",
                 "nameserver not restored: 'fe80::1%eth0'"):
        assert text in left_out, text
    assert "Address 203.0.113.9: dropped (203.0.113.9 is not in an IP pool of tenant acme" in task.log


def test_an_administrators_restore_of_a_tenants_archive_takes_only_what_the_tenants_pools_hand_out(
        db, host, acme, admin_user):
    """The archive is the tenant's word (an upload, say): an administrator restoring it for the tenant
    must not give the container an address outside the tenant's pools (the LAN's router, another
    server: the host would answer ARP for it on its own network through proxy ARP) nor a pool's
    gateway or network address, which the tenant could never take with vzctl set --ipadd."""
    from network.services import restore_addresses
    IPPool.objects.create(name="acme-net", network="198.51.100.0/24", gateway="198.51.100.1").tenants.add(acme)
    IPPool.objects.create(name="shared-net", network="203.0.113.0/24", gateway="203.0.113.1", shared=True)
    ct = Container.objects.create(ctid=74110, hostname="r.test", ostemplate="busybox", host=host, tenant=acme,
                                  status="stopped")
    outcomes = restore_addresses(ct, admin_user, ["192.0.2.50", "198.51.100.1", "198.51.100.0", "203.0.113.1",
                                                  "198.51.100.20", "203.0.113.20"])
    kept = {o["address"] for o in outcomes if o["kept"]}
    assert kept == {"198.51.100.20", "203.0.113.20"}, outcomes
    assert set(IPAddress.objects.filter(container=ct).values_list("address", flat=True)) == kept
    reasons = {o["address"]: o["reason"] for o in outcomes}
    assert "tenant acme" in reasons["192.0.2.50"], reasons
    assert "reserved" in reasons["198.51.100.1"] and "reserved" in reasons["203.0.113.1"], reasons
