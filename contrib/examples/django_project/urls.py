"""The example's two routes."""

from django.urls import path

from . import views

urlpatterns = [
    path("api/me", views.me),
    path("public/hello", views.hello),
]
