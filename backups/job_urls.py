"""Backup job pages, included at /backups/jobs/."""
from django.urls import path

from . import job_views as views

urlpatterns = [
    path("", views.job_list, name="backup-job-list"),
    path("new/", views.job_create, name="backup-job-create"),
    path("<int:pk>/", views.job_detail, name="backup-job-detail"),
    path("<int:pk>/run/", views.job_run, name="backup-job-run"),
    path("<int:pk>/delete/", views.job_delete, name="backup-job-delete"),
]
