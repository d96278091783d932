"""An action that arrives just after a destroy finished: a clear 404 'no longer exists', never a 500."""
import pytest

from containers import services
from containers.models import Container
from tasks.models import Task


@pytest.mark.parametrize("action", ["start_container", "stop_container", "restart_container"])
def test_action_on_a_container_destroyed_meanwhile(people, student_ct, action):
    looked_up = Container.objects.get(pk=student_ct.pk)  # what the view found
    Container.objects.filter(pk=student_ct.pk).delete()  # the destroy task finishes now
    with pytest.raises(services.ContainerGone) as err:
        getattr(services, action)(looked_up, people["student"])
    assert err.value.http_status == 404 and "no longer exists" in str(err.value)
    assert not Task.objects.exists()


def test_settings_on_a_container_destroyed_meanwhile(people, student_ct):
    looked_up = Container.objects.get(pk=student_ct.pk)
    Container.objects.filter(pk=student_ct.pk).delete()
    with pytest.raises(services.ContainerGone):
        services.update_container(looked_up, people["student"], hostname="new.example")
