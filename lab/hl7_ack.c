/*
 * lab/hl7_ack.c - general acknowledgements (ACK) to HL7 v2 messages:
 * MSH, MSA (HL7 v2.5.1 section 2.15.8: MSA-1 acknowledgment code, MSA-2
 * the control id of the message acknowledged) and ERR (2.15.5: ERR-2 error
 * location, ERR-3 HL7 error code from table 0357, ERR-4 severity).
 */
#include "lab_int.h"
#include "lab_limits.h"

#include <stdio.h>
#include <string.h>

/* HL7 table 0357, message error condition codes. */
const char *rdx_lab_hl7_error_text(unsigned code)
{
    switch (code) {
    case 0:
        return "Message accepted";
    case 100:
        return "Segment sequence error";
    case 101:
        return "Required field missing";
    case 102:
        return "Data type error";
    case 103:
        return "Table value not found";
    case 200:
        return "Unsupported message type";
    case 201:
        return "Unsupported event code";
    case 202:
        return "Unsupported processing id";
    case 203:
        return "Unsupported version id";
    case 204:
        return "Unknown key identifier";
    case 205:
        return "Duplicate key identifier";
    case 206:
        return "Application record locked";
    case 207:
        return "Application internal error";
    default:
        return "";
    }
}

static rdx_status put_raw(rdx_buf *b, const rdx_lab_hl7_msg *m, const char *path)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    if (m == NULL || rdx_lab_hl7_get_raw(m, path, &p, &n, NULL) != RDX_OK) {
        return RDX_OK;
    }
    return rdx_buf_append(b, p, n);
}

static rdx_status put_text(rdx_buf *b, const rdx_lab_hl7_delims *d, const char *charset,
                           const char *s, rdx_error *err)
{
    if (s == NULL) {
        return RDX_OK;
    }
    return rdx_lab_hl7_escape(d, charset, s, strlen(s), b, err);
}

static rdx_status build(const rdx_lab_hl7_msg *orig, const rdx_lab_ack_spec *sp, rdx_buf *b,
                        rdx_error *err)
{
    static const rdx_lab_hl7_delims defaults = {'|', '^', '~', '\\', '&', 0};
    const rdx_lab_hl7_delims *d = orig != NULL ? &orig->d : &defaults;
    const char *cs = orig != NULL ? orig->charset : "";
    const char f = d->field, c = d->component;
    static const char *const codes[] = {"AA", "AE", "AR"};

    /* MSH: the receiver of the original becomes the sender (2.9.2.2). */
    RDX_TRY(rdx_buf_printf(b, "MSH%c%c%c%c%c", f, c, d->repetition, d->escape, d->subcomponent));
    if (d->truncation) {
        RDX_TRY(rdx_buf_append_u8(b, (uint8_t)d->truncation));
    }
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
    RDX_TRY(put_raw(b, orig, "MSH-5"));
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
    RDX_TRY(put_raw(b, orig, "MSH-6"));
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
    RDX_TRY(put_raw(b, orig, "MSH-3"));
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
    RDX_TRY(put_raw(b, orig, "MSH-4"));
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
    RDX_TRY(put_text(b, d, cs, sp->timestamp, err));
    RDX_TRY(rdx_buf_printf(b, "%c%cACK", f, f));
    const uint8_t *trig = NULL;
    size_t ntrig = 0;
    if (orig != NULL && rdx_lab_hl7_get_raw(orig, "MSH-9.2", &trig, &ntrig, NULL) == RDX_OK &&
        ntrig > 0) {
        RDX_TRY(rdx_buf_append_u8(b, (uint8_t)c));
        RDX_TRY(rdx_buf_append(b, trig, ntrig));
        RDX_TRY(rdx_buf_printf(b, "%cACK", c));
    }
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
    RDX_TRY(put_text(b, d, cs, sp->control_id, err));
    RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
    if (orig != NULL) {
        RDX_TRY(put_raw(b, orig, "MSH-11"));
        RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
        RDX_TRY(put_raw(b, orig, "MSH-12"));
    } else {
        RDX_TRY(rdx_buf_printf(b, "P%c2.5.1", f));
    }
    if (cs[0] != '\0') {
        /* MSH-13 .. MSH-17 empty, then MSH-18 as the original declared it. */
        RDX_TRY(rdx_buf_printf(b, "%c%c%c%c%c%c", f, f, f, f, f, f));
        RDX_TRY(put_raw(b, orig, "MSH-18"));
    }
    RDX_TRY(rdx_buf_append_u8(b, '\r'));

    /* MSA-1 code, MSA-2 the acknowledged message's MSH-10, MSA-3 text. */
    RDX_TRY(rdx_buf_printf(b, "MSA%c%s%c", f, codes[sp->code], f));
    if (orig != NULL) {
        RDX_TRY(put_raw(b, orig, "MSH-10"));
    } else {
        RDX_TRY(put_text(b, d, cs, sp->orig_control_id, err));
    }
    if (sp->text != NULL && sp->text[0] != '\0') {
        RDX_TRY(rdx_buf_append_u8(b, (uint8_t)f));
        RDX_TRY(put_text(b, d, cs, sp->text, err));
    }
    RDX_TRY(rdx_buf_append_u8(b, '\r'));

    if (sp->hl7_error != 0) {
        /* ERR-1 (deprecated) empty; ERR-2 ERL: segment^sequence^field^rep^component. */
        RDX_TRY(rdx_buf_printf(b, "ERR%c%c", f, f));
        if (sp->err_segment != NULL && sp->err_segment[0] != '\0') {
            RDX_TRY(put_text(b, d, cs, sp->err_segment, err));
            RDX_TRY(rdx_buf_append_u8(b, (uint8_t)c));
            if (sp->err_sequence) {
                RDX_TRY(rdx_buf_printf(b, "%u", sp->err_sequence));
            }
            if (sp->err_field) {
                RDX_TRY(rdx_buf_printf(b, "%c%u", c, sp->err_field));
                if (sp->err_component) {
                    RDX_TRY(rdx_buf_printf(b, "%c1%c%u", c, c, sp->err_component));
                }
            }
        }
        /* ERR-3 CWE: code^text^HL70357; ERR-4 severity E. */
        RDX_TRY(rdx_buf_printf(b, "%c%u%c", f, sp->hl7_error, c));
        RDX_TRY(put_text(b, d, cs, rdx_lab_hl7_error_text(sp->hl7_error), err));
        RDX_TRY(rdx_buf_printf(b, "%cHL70357%cE", c, f));
        if (sp->text != NULL && sp->text[0] != '\0') {
            RDX_TRY(rdx_buf_printf(b, "%c%c%c%c", f, f, f, f));
            RDX_TRY(put_text(b, d, cs, sp->text, err));
        }
        RDX_TRY(rdx_buf_append_u8(b, '\r'));
    }
    return RDX_OK;
}

rdx_status rdx_lab_hl7_ack(const rdx_lab_hl7_msg *orig, const rdx_lab_ack_spec *spec, rdx_buf *out,
                           rdx_error *err)
{
    if (spec == NULL || out == NULL || spec->control_id == NULL || spec->control_id[0] == '\0' ||
        spec->timestamp == NULL || spec->timestamp[0] == '\0' || spec->code > RDX_LAB_ACK_AR) {
        return rdx_error_set(err, RDX_EINVAL,
                             "ACK: a control id, a timestamp and a code AA/AE/AR are required");
    }
    rdx_buf b;
    rdx_buf_init(&b, out->max > out->len ? out->max - out->len : 0);
    rdx_status st = build(orig, spec, &b, err);
    if (st == RDX_OK) {
        st = rdx_buf_append(out, b.data, b.len);
    }
    if (st != RDX_OK && err != NULL && err->msg[0] == '\0') {
        rdx_error_set(err, st, "ACK: %s", rdx_strerror(st));
    }
    rdx_buf_free(&b);
    return st;
}

rdx_status lab_hl7_write_msh(const rdx_lab_hl7_msg *m, const rdx_lab_hl7_address *a, rdx_buf *b,
                             rdx_error *err)
{
    const lab_seg *msh = &m->segs[0];
    const char *repl[11] = {NULL};
    repl[3] = a->sending_app;
    repl[4] = a->sending_facility;
    repl[5] = a->receiving_app;
    repl[6] = a->receiving_facility;
    repl[7] = a->timestamp;
    repl[10] = a->control_id;
    /* "MSH" + MSH-1 + MSH-2, as parsed. */
    lab_span enc = lab_hl7_field(m, 0, 2);
    RDX_TRY(rdx_buf_append(b, m->raw + msh->off, 4));
    RDX_TRY(rdx_buf_append(b, enc.p, enc.n));
    /* MSH has nelem elements: the id, then MSH-2 .. MSH-(nelem). */
    unsigned last = msh->nelem;
    if (last < 10) {
        last = 10;
    }
    for (unsigned f = 3; f <= last; f++) {
        RDX_TRY(rdx_buf_append_u8(b, (uint8_t)m->d.field));
        if (f <= 10 && repl[f] != NULL) {
            RDX_TRY(rdx_lab_hl7_escape(&m->d, m->charset, repl[f], strlen(repl[f]), b, err));
        } else {
            lab_span s = lab_hl7_field(m, 0, f);
            RDX_TRY(rdx_buf_append(b, s.p, s.n));
        }
    }
    return rdx_buf_append_u8(b, '\r');
}

static rdx_status readdress(const rdx_lab_hl7_msg *m, const rdx_lab_hl7_address *a, rdx_buf *b,
                            rdx_error *err)
{
    RDX_TRY(lab_hl7_write_msh(m, a, b, err));
    for (size_t i = 1; i < m->nsegs; i++) {
        RDX_TRY(rdx_buf_append(b, m->raw + m->segs[i].off, m->segs[i].len));
        RDX_TRY(rdx_buf_append_u8(b, '\r'));
    }
    return RDX_OK;
}

rdx_status rdx_lab_hl7_readdress(const rdx_lab_hl7_msg *m, const rdx_lab_hl7_address *a,
                                 rdx_buf *out, rdx_error *err)
{
    if (m == NULL || a == NULL || out == NULL || m->envelope) {
        return rdx_error_set(err, RDX_EINVAL, "readdress: bad arguments");
    }
    rdx_buf b;
    rdx_buf_init(&b, out->max > out->len ? out->max - out->len : 0);
    rdx_status st = readdress(m, a, &b, err);
    if (st == RDX_OK) {
        st = rdx_buf_append(out, b.data, b.len);
    }
    if (st != RDX_OK && err != NULL && err->msg[0] == '\0') {
        rdx_error_set(err, st, "readdress: %s", rdx_strerror(st));
    }
    rdx_buf_free(&b);
    return st;
}
