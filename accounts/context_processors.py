"""`nav` in every template: the menu entries the signed-in user's role may open."""
from .permissions import navigation


def nav(request):
    return {"nav": navigation(request.user)} if request.user.is_authenticated else {}
