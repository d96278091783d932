"""Task list and task page with a live log."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from django.core.exceptions import PermissionDenied

from accounts.permissions import can_cancel_task, get_task_for_user, visible_tasks
from panel.forms import ActionForm, form_response, wants_fragment

from .choices import TaskStatus
from .services import cancel_task


@login_required
def task_list(request):
    tasks = visible_tasks(request.user)
    status = request.GET.get("status")
    if status in TaskStatus.values:
        tasks = tasks.filter(status=status)
    template = "tasks/_table.html" if wants_fragment(request) else "tasks/list.html"
    return render(request, template, {"tasks": tasks[:200], "status": status, "statuses": TaskStatus.choices})


@login_required
def task_detail(request, pk):
    return task_page(request, get_task_for_user(request.user, pk))


def task_page(request, task, status: int = 200, cancel_form=None):
    template = "tasks/_live.html" if wants_fragment(request) else "tasks/detail.html"
    return render(request, template, {"task": task, "cancel_form": cancel_form or ActionForm(),
                                      "ws_port": settings.CONSOLE_BROWSER_PORT}, status=status)


@login_required
@require_POST
def task_cancel(request, pk):
    task = get_task_for_user(request.user, pk)
    if not can_cancel_task(request.user, task):
        raise PermissionDenied(f"You may not cancel task #{task.pk}.")

    def act(form):
        cancel_task(task, request.user)
        messages.success(request, f"Task #{task.pk} cancelled.")
        return redirect("task-detail", task.pk)
    return form_response(request, ActionForm(request.POST), act,
                         lambda form, status: task_page(request, task, status, cancel_form=form))
