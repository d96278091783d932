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


def listed_tasks(user):
    """The task list's queryset, the page's and the API's: the user's tasks without their logs (a
    list never shows them, and one log can be megabytes)."""
    return visible_tasks(user).defer("log")


@login_required
def task_list(request):
    from panel.lists import ListView, list_response

    from .filters import TaskFilterSet
    from .tables import TaskTable
    filterset = TaskFilterSet(request.GET, listed_tasks(request.user), request=request)
    listing = ListView(request, TaskTable, filterset, noun="task")
    return list_response(request, listing, "tasks/list.html", lambda: {"statuses": TaskStatus.choices})


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
