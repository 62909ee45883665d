"""Messages of Django and of libraries that their own zh-Hans catalogs lack.

Our catalog (LOCALE_PATHS) comes first for the same msgid, so listing the msgid here makes
`makemessages` keep it in locale/ and we translate it there. Nothing imports this module;
it exists to be read by xgettext.
"""

from django.utils.translation import gettext_noop

# django.contrib.admin (5.2): the visually hidden headers of the app list on the index
# and in the navigation sidebar, and the add-user page's intro.
gettext_noop("Model name")
gettext_noop("Add link")
gettext_noop("Change or view list link")
gettext_noop("After you’ve created a user, you’ll be able to edit more user options.")

# django-simple-history's history list (its zh_Hans catalog lacks these).
gettext_noop("Changes")
gettext_noop("None")

# rest_framework_api_key: a validation error of its model (the fields are relabelled on
# TenantAPIKey).
gettext_noop("The API key has been revoked, which cannot be undone.")
