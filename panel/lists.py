"""Every list page the same way: a tenant-scoped queryset, narrowed by the app's filterset
(django-filter, the same one its API list uses), sorted and paged by the app's table
(django-tables2), with a fixed number of queries whatever the number of rows.

Bad parameters never reach the database and never answer 500: a filter that does not validate
(a name the user may not see answers exactly like one that does not exist) shows its error
beside the field and lists nothing, with HTTP 400; a page past the end shows the last page, a
page that is not a number the first; a page size that is not offered is the default.

Live updates (`static/js/listlive.js`): each row carries a version, a short hash of what it
shows. The page asks again every few seconds with the versions it holds (`known=key.version,...`)
and gets back only the rows whose version it lacks, the order of the keys and the total, or 204
when nothing at all changed. A row's version is computed from the row as drawn, so every change
that shows (a status, a lock, an address, a host's name) makes a new one, whoever wrote it.
"""
from __future__ import annotations

import hashlib

import django_tables2 as tables
from django.core.paginator import EmptyPage, PageNotAnInteger
from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import mark_safe

PER_PAGE_CHOICES = (25, 50, 100, 250)
DEFAULT_PER_PAGE = 50
# What a poll may say it holds: the page's keys and versions, no more than the largest page.
MAX_KNOWN = max(PER_PAGE_CHOICES)
SORT_PARAM = "sort"


def per_page(request, default: int = DEFAULT_PER_PAGE) -> int:
    """The page size asked for if it is one of PER_PAGE_CHOICES, else `default`."""
    raw = request.GET.get("per_page", "")
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) in PER_PAGE_CHOICES else default


def row_version(cells_html: str) -> str:
    return hashlib.blake2b(cells_html.encode(), digest_size=5).hexdigest()


class ListView:
    """One list as a page shows it: the filterset, the table paged over its queryset, the rows
    drawn once (key, version, HTML), and whether the filters were valid."""

    def __init__(self, request, table_class, filterset, *, noun: str = "row", default_per_page: int = DEFAULT_PER_PAGE,
                 **table_kwargs):
        self.request, self.noun = request, noun
        self.filterset = filterset
        self.valid = filterset.is_valid()
        qs = filterset.qs if self.valid else filterset.queryset.none()
        sort = request.GET.get(SORT_PARAM) if self.valid else None
        self.table = table_class(qs, order_by=sort or None, order_by_field=SORT_PARAM, **table_kwargs)
        if self.table.order_by:
            # The table sorted by its column (an unknown one it ignores); the primary key last, so
            # rows that sort alike keep one order and pages never overlap or skip one.
            data = self.table.data
            tiebreak = "-pk" if self.table.order_by[0].is_descending else "pk"
            data.data = data.data.order_by(*data.data.query.order_by, tiebreak)
        self.per_page = per_page(request, default_per_page)
        page = request.GET.get("page", "1")
        try:
            self.table.paginate(page=page, per_page=self.per_page)
        except (PageNotAnInteger, EmptyPage):
            # The same paginator, so the count is not asked again: the first page or the last.
            self.table.page = self.table.paginator.get_page(page)
        self.rows = [self._draw(row) for row in self.table.paginated_rows]

    def _draw(self, row) -> tuple[str, str, str]:
        key = str(self.table.row_key(row.record))
        cells = "".join(format_html("<td{}>{}</td>", self._td(column), cell) for column, cell in row.items())
        version = row_version(cells)
        return key, version, format_html('<tr data-key="{}" data-v="{}"{}>{}</tr>', key, version,
                                         mark_safe(self.table.extra_row_attrs(row.record)), mark_safe(cells))

    def _td(self, column) -> str:
        """A column's cell attributes, worked out once per page, not once per cell."""
        cache = self.__dict__.setdefault("_td_attrs", {})
        if column.name not in cache:
            html = column.attrs["td"].as_html()
            cache[column.name] = mark_safe(f" {html}") if html else ""
        return cache[column.name]

    @property
    def total(self) -> int:
        return self.table.paginator.count

    def context(self) -> dict:
        return {"list": self, "table": self.table, "filter": self.filterset, "rows": self.rows,
                "per_page_choices": PER_PAGE_CHOICES}

    def live_response(self) -> HttpResponse:
        """What the page's poll gets: 204 when its rows, order and total are what it holds; otherwise
        the rows it lacks, the order of all keys and the total, as JSON."""
        known = parse_known(self.request.GET.get("known", ""))
        order = [key for key, _, _ in self.rows]
        changed = {key: html for key, version, html in self.rows if known.get(key) != version}
        if not changed and list(known) == order and self.request.GET.get("total") == str(self.total):
            return HttpResponse(status=204)
        return JsonResponse({"order": order, "rows": changed, "total": self.total,
                             "summary": render_to_string("_list_summary.html", {"list": self})})


class PanelTable(tables.Table):
    """A list's table: the panel's look (templates/_list_table.html draws it), a key per row (its
    `data-key`, what live updates and bulk actions name it by) and any row attributes a page needs."""

    def row_key(self, record) -> str:
        return str(record.pk)

    def extra_row_attrs(self, record) -> str:
        return ""

    class Meta:
        template_name = "_list_table.html"
        attrs = {"class": "table table-sm table-hover align-middle mb-0"}
        orderable = True
        default = "-"


def parse_known(raw: str) -> dict[str, str]:
    """`key.version,...` as the page sends it, in its order; anything malformed is left out, so a
    bad value costs the client a full answer, never an error."""
    known = {}
    for item in raw.split(",")[:MAX_KNOWN]:
        key, _, version = item.partition(".")
        if key.isascii() and key.isdigit() and len(version) == 10 and version.isascii() and version.isalnum():
            known[key] = version
    return known


def list_response(request, list_view: ListView, page_template: str, page_context=None):
    """The whole page (with `page_context()`, asked only for it), or for the page's poll (`?live=1`)
    only what changed."""
    from django.shortcuts import render
    if request.GET.get("live") == "1":
        if not list_view.valid:
            return HttpResponse(status=204)
        return list_view.live_response()
    context = list_view.context()
    if page_context:
        context.update(page_context())
    return render(request, page_template, context, status=200 if list_view.valid else 400)


def sort_fields(table_class, value: str | None) -> list[str] | None:
    """The ORDER BY of `sort=column` or `sort=-column` (a column of `table_class` that sorts), ending on
    the primary key so pages never overlap; None when not asked. An unknown column: ValueError
    naming those there are (the API answers 400 with it; the page's header offers only these)."""
    if not value:
        return None
    descending = value.startswith("-")
    name = value.lstrip("-")
    columns = sortable_columns(table_class)
    if name not in columns:
        raise ValueError(f"Sort by one of: {', '.join(columns)} (- before it for descending).")
    fields = [f"-{f}" if descending else f for f in columns[name]]
    return fields + ["pk" if not descending else "-pk"]


def sortable_columns(table_class) -> dict[str, tuple[str, ...]]:
    """Column name -> the model fields it sorts by, for each column of `table_class` that sorts."""
    result = {}
    for name, column in table_class.base_columns.items():
        if column.orderable is False or (column.orderable is None and not table_class._meta.orderable):
            continue
        order_by = column.order_by or (column.accessor or name,)
        result[name] = tuple(str(f).replace(".", "__") for f in order_by)
    return result


def sort_choices(table_class) -> list[str]:
    """Every value `sort` takes for `table_class`, for the API's schema."""
    return [f"{sign}{name}" for name in sortable_columns(table_class) for sign in ("", "-")]


def filtered_for_api(request, filterset_class, table_class, queryset):
    """An API list: `queryset` narrowed by the page's filterset and sorted by the page's column names
    (`sort`); a filter or sort that does not validate answers 400 with the reason, by parameter."""
    from rest_framework.exceptions import ValidationError
    filterset = filterset_class(request.query_params, queryset, request=request)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors)
    try:
        ordering = sort_fields(table_class, request.query_params.get(SORT_PARAM))
    except ValueError as exc:
        raise ValidationError({SORT_PARAM: [str(exc)]}) from None
    return filterset.qs.order_by(*ordering) if ordering else filterset.qs
