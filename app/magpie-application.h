/* magpie-application.h - the Magpie application: actions, command line, the shared connection */
#pragma once

#include <adwaita.h>

#include "magpie-connection.h"
#include "magpie-digits.h"
#include "magpie-events.h"
#include "magpie-identity.h"
#include "magpie-library.h"
#include "magpie-models.h"
#include "magpie-uploader.h"

G_BEGIN_DECLS

#define MAGPIE_TYPE_APPLICATION (magpie_application_get_type ())

G_DECLARE_FINAL_TYPE (MagpieApplication, magpie_application, MAGPIE, APPLICATION, AdwApplication)

MagpieApplication *magpie_application_new            (void);
MagpieConnection  *magpie_application_get_connection (MagpieApplication *self);
MagpieLibrary     *magpie_application_get_library    (MagpieApplication *self);
MagpieDigits      *magpie_application_get_digits     (MagpieApplication *self);
MagpieEvents      *magpie_application_get_events     (MagpieApplication *self);
MagpieIdentity    *magpie_application_get_identity   (MagpieApplication *self);
MagpieModels      *magpie_application_get_models     (MagpieApplication *self);
MagpieCredentials *magpie_application_get_credentials (MagpieApplication *self);
MagpieUploader    *magpie_application_get_uploader   (MagpieApplication *self);
void               magpie_application_stop_workers   (MagpieApplication *self);

G_END_DECLS
