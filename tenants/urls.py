from django.urls import path

from . import views

app_name = "tenants"

urlpatterns = [
    path("invite/<str:token>/", views.invitation_accept, name="invitation-accept"),
]
