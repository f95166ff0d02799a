from django.contrib import admin
from django.http import HttpResponse
from django.urls import path, re_path


def echo(request):
    return HttpResponse("django_site: %s %s\n"
                        % (request.method, request.get_full_path()),
                        content_type="text/plain")


urlpatterns = [
    path("admin/", admin.site.urls),
    re_path("", echo),
]
