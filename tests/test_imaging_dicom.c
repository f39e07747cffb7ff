/*
 * The C face over DCMTK: header-only reading from files and memory, text,
 * numbers and sequences, file meta information, and refusal of bad input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdx/common.h"
#include "rdx/imaging.h"
#include "support/testutil.h"

#define TAG RDX_IMG_TAG

static rdx_img_dataset *open_fixture(const char *rel)
{
    char path[512];
    rdx_test_fixture(path, sizeof path, rel);
    rdx_img_dataset *ds = NULL;
    rdx_error err;
    rdx_error_clear(&err);
    rdx_status st = rdx_img_dataset_open_file(path, &ds, &err);
    if (st != RDX_OK) {
        fail_msg("%s: %s", path, err.msg);
    }
    return ds;
}

static void expect_text(const rdx_img_dataset *ds, const rdx_img_item *it, uint32_t tag,
                        const char *want)
{
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    rdx_error err;
    assert_int_equal(rdx_img_item_get_text(ds, it, tag, &b, &err), RDX_OK);
    assert_string_equal((const char *)b.data ? (const char *)b.data : "", want);
    rdx_buf_free(&b);
}

static void test_dicom_header_fields_and_meta(void **state)
{
    (void)state;
    rdx_img_dataset *ds = open_fixture("imaging/study/77654033_CT2_17106");
    assert_string_equal(rdx_img_dataset_transfer_syntax(ds), "1.2.840.10008.1.2.1");
    assert_string_equal(rdx_img_dataset_sop_class(ds), "1.2.840.10008.5.1.4.1.1.2");
    assert_string_equal(rdx_img_dataset_sop_instance(ds),
                        "1.3.6.1.4.1.5962.1.1.0.0.0.1196530851.28319.0.93");
    assert_true(rdx_img_dataset_has_pixel_data(ds));
    const rdx_img_item *meta = rdx_img_dataset_meta(ds);
    assert_non_null(meta);
    expect_text(ds, meta, TAG(0x0002, 0x0010), "1.2.840.10008.1.2.1");
    expect_text(ds, NULL, TAG(0x0010, 0x0010), "Doe^Archibald");
    expect_text(ds, NULL, TAG(0x0010, 0x0020), "77654033");
    expect_text(ds, NULL, TAG(0x0008, 0x0060), "CT");
    expect_text(ds, NULL, TAG(0x0008, 0x0020), "19950903");

    int64_t rows = 0, cols = 0;
    assert_int_equal(rdx_img_item_get_i64(ds, NULL, TAG(0x0028, 0x0010), 0, &rows, NULL), RDX_OK);
    assert_int_equal(rdx_img_item_get_i64(ds, NULL, TAG(0x0028, 0x0011), 0, &cols, NULL), RDX_OK);
    assert_true(rows > 0 && cols > 0);
    /* US rendered as text, IS parsed as a number. */
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)rows);
    expect_text(ds, NULL, TAG(0x0028, 0x0010), want);
    int64_t series = 0;
    assert_int_equal(rdx_img_item_get_i64(ds, NULL, TAG(0x0020, 0x0011), 0, &series, NULL), RDX_OK);
    assert_int_equal(series, 2);
    double spacing = 0;
    assert_int_equal(rdx_img_item_get_double(ds, NULL, TAG(0x0028, 0x0030), 1, &spacing, NULL),
                     RDX_OK);
    assert_true(spacing > 0.0);

    /* Absent tags, absent values, non-text VRs. */
    rdx_buf b;
    rdx_buf_init(&b, 1024);
    rdx_error err;
    assert_int_equal(rdx_img_item_get_text(ds, NULL, TAG(0x0009, 0x0001), &b, &err), RDX_ENOTFOUND);
    assert_non_null(strstr(err.msg, "(0009,0001)"));
    int64_t v;
    assert_int_equal(rdx_img_item_get_i64(ds, NULL, TAG(0x0028, 0x0010), 5, &v, NULL),
                     RDX_ENOTFOUND);
    assert_int_equal(rdx_img_item_get_i64(ds, NULL, TAG(0x0010, 0x0010), 0, &v, &err), RDX_EFORMAT);
    /* Pixel Data was never read: the header stops before it. */
    assert_int_equal(rdx_img_item_get_text(ds, NULL, TAG(0x7FE0, 0x0010), &b, NULL), RDX_ENOTFOUND);
    rdx_buf_free(&b);
    rdx_img_dataset_free(ds);
    rdx_img_dataset_free(NULL);
}

static void test_dicom_element_walk_and_sequences(void **state)
{
    (void)state;
    rdx_img_dataset *ds = open_fixture("imaging/study/test-SR.dcm");
    size_t n = rdx_img_item_elem_count(ds, NULL);
    assert_true(n > 20);
    uint32_t prev = 0;
    int saw_content = 0;
    for (size_t i = 0; i < n; i++) {
        rdx_img_elem e;
        assert_int_equal(rdx_img_item_elem(ds, NULL, i, &e), RDX_OK);
        /* PS3.5 7.1: elements in ascending tag order. */
        assert_true(e.tag > prev);
        prev = e.tag;
        if (e.tag == TAG(0x0040, 0xA730)) {
            saw_content = 1;
            assert_true(e.is_sequence);
            assert_string_equal(e.vr, "SQ");
            assert_true(e.vm > 0);
        }
    }
    assert_true(saw_content);
    rdx_img_elem e;
    assert_int_equal(rdx_img_item_elem(ds, NULL, n, &e), RDX_ENOTFOUND);

    size_t items = 0;
    assert_int_equal(rdx_img_item_seq_count(ds, NULL, TAG(0x0040, 0xA043), &items, NULL), RDX_OK);
    assert_int_equal(items, 1);
    const rdx_img_item *code = NULL;
    assert_int_equal(rdx_img_item_seq_item(ds, NULL, TAG(0x0040, 0xA043), 0, &code, NULL), RDX_OK);
    expect_text(ds, code, TAG(0x0008, 0x0104), "Diagnosis");
    assert_int_equal(rdx_img_item_seq_item(ds, NULL, TAG(0x0040, 0xA043), 1, &code, NULL),
                     RDX_ENOTFOUND);
    assert_int_equal(rdx_img_item_seq_count(ds, NULL, TAG(0x0010, 0x0010), &items, NULL),
                     RDX_EFORMAT);
    assert_int_equal(rdx_img_item_seq_count(ds, NULL, TAG(0x0040, 0xA999), &items, NULL),
                     RDX_ENOTFOUND);
    rdx_img_dataset_free(ds);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)sz + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return p;
}

static void test_dicom_memory_matches_file(void **state)
{
    (void)state;
    char path[512];
    rdx_test_fixture(path, sizeof path, "imaging/charset/chrX2.dcm");
    size_t n;
    unsigned char *p = slurp(path, &n);
    rdx_img_dataset *ds = NULL;
    rdx_error err;
    assert_int_equal(rdx_img_dataset_open_mem(p, n, "upload 1", &ds, &err), RDX_OK);
    expect_text(ds, NULL, TAG(0x0010, 0x0010), "Wang^XiaoDong=王^小东=");
    assert_string_equal(rdx_img_dataset_sop_class(ds), "1.2.840.10008.5.1.4.1.1.7");
    rdx_img_dataset_free(ds);

    /* The same stream without its preamble and meta is refused only if it is not a data set. */
    assert_int_equal(rdx_img_dataset_open_mem(p, 100, "cut", &ds, &err), RDX_EFORMAT);
    assert_null(ds);
    assert_non_null(strstr(err.msg, "cut"));
    assert_int_equal(rdx_img_dataset_open_mem(p, 0, NULL, &ds, &err), RDX_EFORMAT);
    assert_non_null(strstr(err.msg, "<memory>"));
    /* Cut in the middle of the data set: refused, never a crash. */
    for (size_t cut = 140; cut < n; cut += 37) {
        rdx_status st = rdx_img_dataset_open_mem(p, cut, "cut", &ds, &err);
        if (st == RDX_OK) {
            rdx_img_dataset_free(ds);
        } else {
            assert_null(ds);
            assert_true(err.msg[0] != '\0');
        }
    }
    free(p);
}

static void test_dicom_refuses_malformed_with_reason(void **state)
{
    (void)state;
    static const struct {
        const char *rel;
        rdx_status st;
        const char *why;
    } cases[] = {
        {"imaging/malformed/MR_truncated.dcm", RDX_ESHORT, "Pixel Data (7FE0,0010)"},
        {"imaging/malformed/meta_missing_tsyntax.dcm", RDX_EPARSE, "Transfer Syntax UID"},
        {"imaging/not_dicom.txt", RDX_EFORMAT, "not a DICOM file"},
        {"imaging/no-such-file.dcm", RDX_ENOENT, "No such file"},
        {"imaging", RDX_EFORMAT, "not a regular file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        rdx_test_fixture(path, sizeof path, cases[i].rel);
        rdx_img_dataset *ds = (rdx_img_dataset *)1;
        rdx_error err;
        rdx_error_clear(&err);
        rdx_status st = rdx_img_dataset_open_file(path, &ds, &err);
        if (st != cases[i].st || strstr(err.msg, cases[i].why) == NULL ||
            strstr(err.msg, path) == NULL) {
            fail_msg("%s: got %d '%s'", path, (int)st, err.msg);
        }
        assert_null(ds);
    }
    assert_int_equal(rdx_img_dataset_open_file(NULL, NULL, NULL), RDX_EINVAL);
}

/* Every file of the shared set opens or is refused cleanly; the malformed ones are refused. */
static void test_dicom_every_shared_file(void **state)
{
    (void)state;
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        print_message("RDX_DATA (../shared/data) is absent: skipped\n");
        skip();
    }
    static const char *const dirs[] = {"charset",
                                       "compressed/jpeg2000",
                                       "compressed/jpeg_baseline",
                                       "compressed/jpeg_extended",
                                       "compressed/jpeg_lossless",
                                       "compressed/jpeg_ls",
                                       "compressed/rle",
                                       "cr_dx",
                                       "ct",
                                       "deflated",
                                       "dicomdir",
                                       "ecg_waveform",
                                       "malformed",
                                       "mr",
                                       "multiframe",
                                       "no_meta",
                                       "other/mg",
                                       "other/palette",
                                       "other/pt",
                                       "other/rt",
                                       "other/seg",
                                       "other/xa",
                                       "sr",
                                       "us"};
    size_t opened = 0, refused = 0;
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/dicom/%s", data, dirs[d]);
        DIR *dp = opendir(dir);
        assert_non_null(dp);
        struct dirent *de;
        while ((de = readdir(dp)) != NULL) {
            if (de->d_name[0] == '.') {
                continue;
            }
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            rdx_img_dataset *ds = NULL;
            rdx_error err;
            rdx_error_clear(&err);
            rdx_status st = rdx_img_dataset_open_file(path, &ds, &err);
            if (st != RDX_OK) {
                refused++;
                assert_non_null(strstr(err.msg, de->d_name));
                continue;
            }
            opened++;
            /* Walk every top-level element and read it as text where it has one. */
            size_t n = rdx_img_item_elem_count(ds, NULL);
            for (size_t i = 0; i < n; i++) {
                rdx_img_elem e;
                assert_int_equal(rdx_img_item_elem(ds, NULL, i, &e), RDX_OK);
                rdx_status ts = rdx_img_item_get_text(ds, NULL, e.tag, &b, &err);
                if (ts != RDX_OK && ts != RDX_EFORMAT && ts != RDX_ELIMIT) {
                    fail_msg("%s: %s", path, err.msg);
                }
            }
            rdx_img_dataset_free(ds);
        }
        closedir(dp);
    }
    /* 94 files: MR_truncated, meta_missing_tsyntax and no_meta.dcm (no data set at offset 0). */
    assert_int_equal(refused, 3);
    assert_int_equal(opened, 91);
    rdx_buf_free(&b);
}

/* UN-encoded elements of known tags read as their dictionary VR (rtdose_rle's Modality). */
static void test_dicom_un_known_tag(void **state)
{
    (void)state;
    const char *data = rdx_test_data_dir();
    if (data == NULL) {
        print_message("RDX_DATA (../shared/data) is absent: skipped\n");
        skip();
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/dicom/compressed/rle/rtdose_rle.dcm", data);
    rdx_img_dataset *ds = NULL;
    assert_int_equal(rdx_img_dataset_open_file(path, &ds, NULL), RDX_OK);
    expect_text(ds, NULL, TAG(0x0008, 0x0060), "RTDOSE");
    assert_string_equal(rdx_img_dataset_sop_class(ds), "1.2.840.10008.5.1.4.1.1.481.2");
    rdx_img_dataset_free(ds);
}

struct oom_ctx {
    const char *path;
};

static int oom_get_text(void *p)
{
    struct oom_ctx *c = p;
    rdx_img_dataset *ds = NULL;
    if (rdx_img_dataset_open_file(c->path, &ds, NULL) != RDX_OK) {
        return 1;
    }
    rdx_buf b;
    rdx_buf_init(&b, 1 << 20);
    rdx_status st = rdx_img_item_get_text(ds, NULL, TAG(0x0010, 0x0010), &b, NULL);
    int ok =
        st == RDX_OK && strcmp((const char *)b.data, "Yamada^Tarou=山田^太郎=やまだ^たろう") == 0;
    rdx_buf_free(&b);
    rdx_img_dataset_free(ds);
    if (st != RDX_OK) {
        assert_int_equal(st, RDX_ENOMEM);
        return 1;
    }
    assert_true(ok);
    return 0;
}

static void test_dicom_oom_sweep(void **state)
{
    (void)state;
    char path[512];
    struct oom_ctx c = {rdx_test_fixture(path, sizeof path, "imaging/charset/chrH31.dcm")};
    assert_true(rdx_oom_sweep(oom_get_text, &c) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dicom_header_fields_and_meta),
        cmocka_unit_test(test_dicom_element_walk_and_sequences),
        cmocka_unit_test(test_dicom_memory_matches_file),
        cmocka_unit_test(test_dicom_refuses_malformed_with_reason),
        cmocka_unit_test(test_dicom_every_shared_file),
        cmocka_unit_test(test_dicom_un_known_tag),
        cmocka_unit_test(test_dicom_oom_sweep),
    };
    return cmocka_run_group_tests_name("imaging_dicom", tests, NULL, NULL);
}
