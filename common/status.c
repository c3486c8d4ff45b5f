/* status.c: text and names for nt_status, from the one X-macro list in status.h. */
#include "status.h"

const char *nt_status_text(nt_status st)
{
    switch (st) {
#define NT_STATUS_TEXT(name, text) case NT_##name: return text;
    NT_STATUS_MAP(NT_STATUS_TEXT)
#undef NT_STATUS_TEXT
    default: return "unknown status";
    }
}

const char *nt_status_name(nt_status st)
{
    switch (st) {
#define NT_STATUS_NAME(name, text) case NT_##name: return #name;
    NT_STATUS_MAP(NT_STATUS_NAME)
#undef NT_STATUS_NAME
    default: return "EUNKNOWN";
    }
}
