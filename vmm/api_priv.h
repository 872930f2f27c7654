/* Shared by the control socket's two halves (api.c: clients; api_request.c:
 * requests). */
#ifndef VMM_API_PRIV_H
#define VMM_API_PRIV_H

#include "api.h"

/* A malloc'ed error reply line ({"error": {"class": "GenericError", "desc": desc}}),
 * for what is refused before any request is read. NULL when out of memory. */
char *api_error_line(const char *desc);

#endif
