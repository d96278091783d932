"""Bulk actions from the container list: one operation on many containers, each through its own
service function (so permission, quota and the container's lock apply to each, as if it were
done alone), with a result per container: some may be refused while the others go."""
from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404

from panel.validators import is_ascii_number
from tasks.services import TaskError

# Never more at once than the largest page of the list offers.
BULK_MAX = 250


def _backup(ct, user):
    from backups.services import backup_container
    return backup_container(ct, user)


def _destroy(ct, user):
    from . import services
    # The one confirmation covered every container selected: each passes its own CTID on, as the
    # container page's destroy form has it typed.
    return services.destroy_container(ct, user, str(ct.ctid))


def _service(name):
    def call(ct, user):
        from . import services
        return getattr(services, name)(ct, user)
    return call


BULK_ACTIONS = {
    "start": ("Start", _service("start_container")),
    "stop": ("Stop", _service("stop_container")),
    "restart": ("Restart", _service("restart_container")),
    "backup": ("Back up", _backup),
    "destroy": ("Destroy", _destroy),
}


class BulkForm(forms.Form):
    """What the list posts: an action and the CTIDs ticked; `confirm` once the user has seen the
    list of what it will do (for destroy, the word "destroy" typed)."""

    action = forms.ChoiceField(choices=[(k, v[0]) for k, v in BULK_ACTIONS.items()])
    confirmed = forms.BooleanField(required=False)
    confirm = forms.CharField(required=False, max_length=16)

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.ctids_raw = data.getlist("ctid") if data is not None else []

    def clean(self):
        data = super().clean()
        raw = self.ctids_raw
        if not raw:
            raise forms.ValidationError("Select at least one container.")
        if len(raw) > BULK_MAX:
            raise forms.ValidationError(f"At most {BULK_MAX} containers at once.")
        bad = [c for c in raw if not is_ascii_number(c)]
        if bad:
            raise forms.ValidationError(f"{bad[0][:20]!r} is not a CTID.")
        data["ctids"] = list(dict.fromkeys(int(c) for c in raw))
        if data.get("confirmed") and data.get("action") == "destroy" and data.get("confirm") != "destroy":
            self.add_error("confirm", 'Type "destroy" to destroy these containers.')
        return data


@dataclass
class BulkResult:
    ctid: int
    ok: bool
    message: str
    task_id: int | None = None


def run_bulk(user, action: str, ctids: list[int]) -> list[BulkResult]:
    """`action` on each of `ctids` in turn, as `user`; one result each, in the order given. A CTID the
    user may not see answers exactly as one that does not exist."""
    from accounts.permissions import get_container_for_user
    label, operation = BULK_ACTIONS[action]
    results = []
    for ctid in ctids:
        try:
            ct = get_container_for_user(user, ctid, manage=True)
            task = operation(ct, user)
        except Http404:
            results.append(BulkResult(ctid, False, f"No container {ctid}."))
        except PermissionDenied as exc:
            results.append(BulkResult(ctid, False, str(exc)))
        except TaskError as exc:
            results.append(BulkResult(ctid, False, str(exc)))
        else:
            results.append(BulkResult(ctid, True, f"Task #{task.pk} queued: {label.lower()}.", task.pk))
    return results


def selected(user, ctids: list[int]):
    """For the confirmation: the containers among `ctids` the user may manage, and the CTIDs not found
    among them (never saying which exist)."""
    from accounts.permissions import manageable_containers
    found = list(manageable_containers(user).filter(ctid__in=ctids).order_by("ctid"))
    known = {ct.ctid for ct in found}
    return found, [c for c in ctids if c not in known]
