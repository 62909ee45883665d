from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import well_known

admin.site.site_header = "Lanzuan 蓝钻"
admin.site.site_title = "Lanzuan"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("lanzuan.api_urls")),
    path(".well-known/lanzuan-keys.json", well_known.lanzuan_keys, name="lanzuan-keys"),
    path("", include("unsubscribe.inbound.urls")),
    path("", include("unsubscribe.voice.urls")),
    path("", include("unsubscribe.optout.urls")),
    path("", include("notifications.urls")),
    path("", include("tenants.urls")),
]
