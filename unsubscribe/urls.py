from django.urls import path

from . import views

urlpatterns = [
    path("t/<slug:slug>/unsubscribe/", views.unsubscribe_start, name="unsubscribe-start"),
    path("t/<slug:slug>/status/", views.request_status, name="unsubscribe-status"),
]
