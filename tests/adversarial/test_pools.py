"""A member reaches for addresses that are not theirs: another tenant's pool, their own pool's gateway,
reserved parts, addresses outside every pool, scope ids with a newline in them."""
from __future__ import annotations

import pytest

from containers.services import InvalidRequest, NotAllowed
from network import services as net
from network.models import IPAddress, IPPool


@pytest.fixture
def pools(acme, other_tenant, host):
    ours = IPPool.objects.create(name="acme-net", network="198.51.100.0/24", gateway="198.51.100.1",
                                 ranges="198.51.100.10-198.51.100.20")
    ours.tenants.add(acme)
    theirs = IPPool.objects.create(name="other-net", network="203.0.113.0/24", gateway="203.0.113.1")
    theirs.tenants.add(other_tenant)
    return ours, theirs


@pytest.mark.parametrize("address,why", [
    ("203.0.113.7", "not in an IP pool of tenant acme"),       # the other tenant's pool
    ("192.0.2.9", "not in an IP pool of tenant acme"),         # in no pool at all
    ("198.51.100.1", "reserved in pool acme-net"),             # our gateway
    ("198.51.100.0", "reserved in pool acme-net"),             # the network address
    ("198.51.100.255", "reserved in pool acme-net"),           # broadcast
    ("198.51.100.30", "reserved in pool acme-net"),            # outside the pool's ranges
])
def test_member_takes_only_what_their_pools_hand_out(people, student_ct, pools, address, why):
    with pytest.raises(NotAllowed) as err:
        net.add_addresses(student_ct, people["student"], [address])
    assert why in str(err.value)
    assert not IPAddress.objects.exists()


def test_auto_never_reaches_another_tenants_pool(people, student_ct, pools):
    with pytest.raises(InvalidRequest) as err:
        net.add_addresses(student_ct, people["student"], ["auto"], pool="other-net")
    assert str(err.value) == "There is no pool 'other-net' that container 501 may use."
    with pytest.raises(InvalidRequest) as err2:
        net.add_addresses(student_ct, people["student"], ["auto"], pool="no-such-pool")
    assert str(err2.value) == "There is no pool 'no-such-pool' that container 501 may use."  # no name leaks
    net.add_addresses(student_ct, people["student"], ["auto"])
    assert IPAddress.objects.get(container=student_ct).address == "198.51.100.10"


def test_a_shared_pool_serves_everyone_and_operators_go_anywhere(people, student_ct, pools):
    shared = IPPool.objects.create(name="shared", network="192.0.2.0/24", shared=True)
    net.add_addresses(student_ct, people["student"], ["192.0.2.44"])
    assert IPAddress.objects.get(address="192.0.2.44").pool == shared
    type(student_ct).objects.filter(pk=student_ct.pk).update(lock_task=None)  # as if that task had finished
    net.add_addresses(student_ct, people["operator"], ["203.0.113.1", "10.99.0.5"])  # a gateway, no pool: theirs
    assert set(IPAddress.objects.values_list("address", flat=True)) == {"192.0.2.44", "203.0.113.1", "10.99.0.5"}


@pytest.mark.parametrize("text", ["2001:db8::5%x", "fe80::1%eth0\nnameserver 6.6.6.6", "198.51.100.12\n1",
                                  "١٩٨.51.100.12", "198.51.100.12/32"])
def test_addresses_with_scope_ids_or_smuggled_lines_are_refused(people, student_ct, pools, text):
    with pytest.raises((InvalidRequest, NotAllowed)):
        net.add_addresses(student_ct, people["student"], [text])
    assert not IPAddress.objects.exists()


def test_blanks_around_an_address_are_trimmed_not_stored(people, student_ct, pools):
    net.add_addresses(student_ct, people["student"], [" 198.51.100.12\n"])
    assert IPAddress.objects.get().address == "198.51.100.12"


@pytest.mark.parametrize("text", ["2001:db8::53%x", "fe80::1%eth0\nnameserver 6.6.6.6", "1.1.1.1\nsearch evil",
                                  "८.८.८.८"])
def test_nameservers_with_scope_ids_or_smuggled_lines_are_refused(people, student_ct, text):
    with pytest.raises(InvalidRequest):
        net.set_dns(student_ct, people["student"], nameservers=[text])
    student_ct.refresh_from_db()
    assert not student_ct.nameservers
