/*
 * The server's per-packet cryptography (P-256 ECDH and ECDSA-SHA256 verify,
 * and the HMAC-SHA256, HKDF-SHA256 and AES-256-GCM that open a v2 knock)
 * through the OpenSSL that node itself links and exports: the same library
 * node:crypto uses, without the per-call costs of its wrappers. node's
 * ECDH.computeSecret re-checks the server's own key pair on every call (one
 * extra scalar multiplication), and a KeyObject import costs more than the
 * verification it serves (OpenSSL 3 decoders and provider key management).
 * P-256 has cofactor 1, so a point that is on the curve needs no further
 * check. node's hkdfSync and createDecipheriv build key objects and fetch
 * algorithm implementations per call; here both are fetched once per thread.
 * A client's key is kept as its point alone (≈0.7 KB per cached client): an
 * EC_KEY copies the curve group and took ≈2.3 KB.
 * A CA's key gets a precomputed multiplication table (createIssuerVerifier):
 * ECDSA_verify computes u1·G + u2·Q with a table for G only and builds a
 * window for Q on every call; with a table for Q as well, a certificate's
 * signature costs about a third. The table is ≈150 KB, so only configured
 * CA keys get one, never a client's.
 * Every OpenSSL error is cleared before returning, because node:crypto
 * reads the same per-thread error queue.
 */
#include <node_api.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ecdh.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define POINT_LENGTH 65
#define COMPRESSED_POINT_LENGTH 33
#define SCALAR_LENGTH 32
#define SECRET_LENGTH 32
#define SHA256_LENGTH 32
#define HKDF_MAX_LENGTH (255 * SHA256_LENGTH)
#define GCM_KEY_LENGTH 32
#define GCM_IV_LENGTH 12
#define GCM_TAG_LENGTH 16
#define MAX_SIGNATURE_LENGTH 72

typedef int (*OrderInverse)(const EC_GROUP *group, BIGNUM *result, const BIGNUM *value, BN_CTX *numbers);

/* One per module instance (main thread and each worker). */
typedef struct {
  EC_GROUP *group;
  EVP_MD *sha256;
  EVP_CIPHER *aes_256_gcm;
  HMAC_CTX *hmac;
  EVP_CIPHER_CTX *cipher;
  BN_CTX *numbers;
  /* NULL where the symbol is missing: see invert_mod_order. */
  OrderInverse curve_inverse;
} Instance;

static void instance_free(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Instance *instance = data;
  EC_GROUP_free(instance->group);
  EVP_MD_free(instance->sha256);
  EVP_CIPHER_free(instance->aes_256_gcm);
  HMAC_CTX_free(instance->hmac);
  EVP_CIPHER_CTX_free(instance->cipher);
  BN_CTX_free(instance->numbers);
  free(instance);
}

static napi_value throw_type_error(napi_env env, const char *message) {
  napi_throw_type_error(env, "SKNOCK_NATIVE_ARGUMENT", message);
  return NULL;
}

static napi_value throw_error(napi_env env, const char *message) {
  ERR_clear_error();
  napi_throw_error(env, "SKNOCK_NATIVE_OPENSSL", message);
  return NULL;
}

/* A Buffer (or Uint8Array) argument; false with a TypeError pending otherwise. */
static int byte_argument(napi_env env, napi_value value, const unsigned char **data, size_t *length) {
  bool is_typed_array = false;
  if (napi_is_typedarray(env, value, &is_typed_array) != napi_ok || !is_typed_array) {
    throw_type_error(env, "expected a Buffer");
    return 0;
  }
  napi_typedarray_type type;
  void *bytes;
  if (napi_get_typedarray_info(env, value, &type, length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_type_error(env, "expected a Buffer");
    return 0;
  }
  *data = bytes;
  return 1;
}

#define MAX_ARGUMENTS 5

/* The first `count` arguments into argv; false with a TypeError pending when fewer were passed. */
static int arguments_of(napi_env env, napi_callback_info info, size_t count, napi_value *argv) {
  size_t argc = MAX_ARGUMENTS;
  napi_value all[MAX_ARGUMENTS];
  if (napi_get_cb_info(env, info, &argc, all, NULL, NULL) != napi_ok || argc < count) {
    throw_type_error(env, "too few arguments");
    return 0;
  }
  for (size_t index = 0; index < count; index += 1) argv[index] = all[index];
  return 1;
}

/* argv's first `count` values, all byte arrays; false with a TypeError pending otherwise. */
static int bytes_of(napi_env env, const napi_value *argv, size_t count, const unsigned char **data, size_t *lengths) {
  for (size_t index = 0; index < count; index += 1) {
    if (!byte_argument(env, argv[index], &data[index], &lengths[index])) return 0;
  }
  return 1;
}

/* The first `count` arguments, all byte arrays; false with a TypeError pending otherwise. */
static int byte_arguments(napi_env env, napi_callback_info info, size_t count, napi_value *argv, const unsigned char **data, size_t *lengths) {
  return arguments_of(env, info, count, argv) && bytes_of(env, argv, count, data, lengths);
}

/* Tags on the handles this module returns, so that a foreign external (or a verifier for an agreement) is refused. */
static const napi_type_tag AGREEMENT_TAG = {0x736b6e6f636b2d61ULL, 0x677265656d656e74ULL};
static const napi_type_tag VERIFIER_TAG = {0x736b6e6f636b2d76ULL, 0x6572696669657221ULL};
static const napi_type_tag ISSUER_VERIFIER_TAG = {0x736b6e6f636b2d69ULL, 0x7373756572746162ULL};

/* What a tagged external made here holds; NULL with a TypeError pending for anything else. */
static void *unwrap_handle(napi_env env, napi_value value, const napi_type_tag *tag, const char *expected) {
  napi_valuetype type = napi_undefined;
  bool tagged = false;
  void *handle = NULL;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_external || napi_check_object_type_tag(env, value, tag, &tagged) != napi_ok ||
      !tagged || napi_get_value_external(env, value, &handle) != napi_ok) {
    throw_type_error(env, expected);
    return NULL;
  }
  return handle;
}

/* `handle` as a tagged external that calls `finalize` on it when collected; NULL with an error pending otherwise (and `handle` finalized). */
static napi_value wrap_handle(napi_env env, void *handle, napi_finalize finalize, const napi_type_tag *tag) {
  napi_value external;
  if (napi_create_external(env, handle, finalize, NULL, &external) != napi_ok) {
    finalize(env, handle, NULL);
    return throw_error(env, "cannot wrap the key");
  }
  if (napi_type_tag_object(env, external, tag) != napi_ok) return throw_error(env, "cannot tag the key");
  return external;
}

/* A handle carrying `tag` followed by `count` byte arrays; NULL with a TypeError pending otherwise. */
static EC_KEY *key_and_bytes(napi_env env, napi_callback_info info, const napi_type_tag *tag, const char *expected, size_t count,
                             const unsigned char **data, size_t *lengths) {
  napi_value argv[MAX_ARGUMENTS];
  if (!arguments_of(env, info, 1 + count, argv)) return NULL;
  EC_KEY *key = unwrap_handle(env, argv[0], tag, expected);
  return key != NULL && bytes_of(env, argv + 1, count, data, lengths) ? key : NULL;
}

static Instance *instance_of(napi_env env) {
  Instance *instance = NULL;
  napi_get_instance_data(env, (void **)&instance);
  return instance;
}

/* A point on P-256 from its SEC 1 encoding (65 bytes uncompressed or 33 compressed), or NULL. */
static EC_POINT *decode_point(const EC_GROUP *group, const unsigned char *data, size_t length) {
  int uncompressed = length == POINT_LENGTH && data[0] == 0x04;
  int compressed = length == COMPRESSED_POINT_LENGTH && (data[0] == 0x02 || data[0] == 0x03);
  if (!uncompressed && !compressed) return NULL;
  EC_POINT *point = EC_POINT_new(group);
  if (point == NULL) {
    /* Out of memory: the error must not stay queued for the next, unrelated call on this thread. */
    ERR_clear_error();
    return NULL;
  }
  if (EC_POINT_oct2point(group, point, data, length, NULL) != 1 || EC_POINT_is_on_curve(group, point, NULL) != 1) {
    EC_POINT_free(point);
    ERR_clear_error();
    return NULL;
  }
  return point;
}

static napi_value boolean_value(napi_env env, int truth) {
  napi_value result;
  napi_get_boolean(env, truth != 0, &result);
  return result;
}

static void key_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EC_KEY_free(data);
}

static void point_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EC_POINT_free(data);
}

static void table_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  EC_GROUP_free(data);
}

/* createAgreement(scalar): an opaque server key for derive(); throws for a scalar outside 1..n-1. */
static napi_value create_agreement(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  const unsigned char *data;
  size_t length;
  if (!byte_arguments(env, info, 1, argv, &data, &length)) return NULL;
  if (length != SCALAR_LENGTH) return throw_type_error(env, "a P-256 private scalar is 32 bytes");
  const EC_GROUP *group = instance_of(env)->group;
  EC_KEY *key = EC_KEY_new();
  BIGNUM *scalar = BN_bin2bn(data, (int)length, NULL);
  EC_POINT *public_point = EC_POINT_new(group);
  int ok = key != NULL && scalar != NULL && public_point != NULL && EC_KEY_set_group(key, group) == 1 && !BN_is_zero(scalar) &&
           BN_cmp(scalar, EC_GROUP_get0_order(group)) < 0 && EC_KEY_set_private_key(key, scalar) == 1 &&
           EC_POINT_mul(group, public_point, scalar, NULL, NULL, NULL) == 1 && EC_KEY_set_public_key(key, public_point) == 1 &&
           EC_KEY_check_key(key) == 1;
  BN_clear_free(scalar);
  EC_POINT_free(public_point);
  if (!ok) {
    EC_KEY_free(key);
    return throw_error(env, "not a valid P-256 private key");
  }
  return wrap_handle(env, key, key_finalize, &AGREEMENT_TAG);
}

/* derive(agreement, point): the 32-byte shared x-coordinate, or null for bytes that are not a point on P-256. */
static napi_value derive(napi_env env, napi_callback_info info) {
  const unsigned char *data;
  size_t length;
  EC_KEY *key = key_and_bytes(env, info, &AGREEMENT_TAG, "expected an agreement from createAgreement()", 1, &data, &length);
  if (key == NULL) return NULL;
  napi_value result;
  EC_POINT *peer = decode_point(EC_KEY_get0_group(key), data, length);
  if (peer == NULL) {
    napi_get_null(env, &result);
    return result;
  }
  unsigned char *secret;
  if (napi_create_buffer(env, SECRET_LENGTH, (void **)&secret, &result) != napi_ok) {
    EC_POINT_free(peer);
    return throw_error(env, "cannot allocate the secret");
  }
  int written = ECDH_compute_key(secret, SECRET_LENGTH, peer, key, NULL);
  EC_POINT_free(peer);
  if (written != SECRET_LENGTH) {
    ERR_clear_error();
    napi_get_null(env, &result);
  }
  return result;
}

/* The one argument of createVerifier and createIssuerVerifier as a point on P-256; NULL with *result null (not a point) or an error pending. */
static EC_POINT *point_argument(napi_env env, napi_callback_info info, napi_value *result) {
  napi_value argv[1];
  const unsigned char *data;
  size_t length;
  if (!byte_arguments(env, info, 1, argv, &data, &length)) return NULL;
  EC_POINT *point = decode_point(instance_of(env)->group, data, length);
  if (point == NULL) napi_get_null(env, result);
  return point;
}

/* createVerifier(point): an opaque public key for verify() (the decoded point), or null for bytes that are not a point on P-256. */
static napi_value create_verifier(napi_env env, napi_callback_info info) {
  napi_value result = NULL;
  EC_POINT *point = point_argument(env, info, &result);
  if (point == NULL) return result;
  return wrap_handle(env, point, point_finalize, &VERIFIER_TAG);
}

/*
 * s^-1 mod n. OpenSSL's own ECDSA inverts with the curve's fast routine
 * (ossl_ec_group_do_inverse_ord: ≈4 µs for P-256), which node exports but no
 * header declares; BN_mod_inverse (≈15–20 µs) is the fallback wherever the
 * symbol is not there.
 */
static int invert_mod_order(const Instance *instance, BIGNUM *result, const BIGNUM *value) {
  if (instance->curve_inverse != NULL) return instance->curve_inverse(instance->group, result, value, instance->numbers) == 1;
  return BN_mod_inverse(result, value, EC_GROUP_get0_order(instance->group), instance->numbers) != NULL;
}

/*
 * createIssuerVerifier(point): like createVerifier, for a CA's key: P-256
 * with the point as its generator and a precomputed table for it (≈40 ms,
 * ≈150 KB), or null for bytes that are not a point on P-256.
 */
static napi_value create_issuer_verifier(napi_env env, napi_callback_info info) {
  napi_value result = NULL;
  EC_POINT *point = point_argument(env, info, &result);
  if (point == NULL) return result;
  const EC_GROUP *group = instance_of(env)->group;
  /* The same curve and method (so its points add to P-256's), with the issuer's point as generator: order n, cofactor 1. */
  EC_GROUP *table = EC_GROUP_dup(group);
  int ok = table != NULL && EC_GROUP_set_generator(table, point, EC_GROUP_get0_order(group), BN_value_one()) == 1 &&
           EC_GROUP_precompute_mult(table, instance_of(env)->numbers) == 1;
  EC_POINT_free(point);
  if (!ok) {
    EC_GROUP_free(table);
    return throw_error(env, "cannot build the issuer's table");
  }
  return wrap_handle(env, table, table_finalize, &ISSUER_VERIFIER_TAG);
}

/* u1·G + u2·Q into sum: Q from the issuer's table when there is one (two multiplications, each with a table), else the point (one, as ECDSA_verify does it). */
static int combine(const EC_GROUP *group, EC_POINT *sum, const BIGNUM *u1, const BIGNUM *u2, const EC_GROUP *issuer_table, const EC_POINT *key,
                   BN_CTX *numbers) {
  if (issuer_table == NULL) return EC_POINT_mul(group, sum, u1, key, u2, numbers) == 1;
  EC_POINT *by_generator = EC_POINT_new(group), *by_issuer = EC_POINT_new(issuer_table);
  int ok = by_generator != NULL && by_issuer != NULL && EC_POINT_mul(group, by_generator, u1, NULL, NULL, numbers) == 1 &&
           EC_POINT_mul(issuer_table, by_issuer, u2, NULL, NULL, numbers) == 1 && EC_POINT_add(group, sum, by_generator, by_issuer, numbers) == 1;
  EC_POINT_free(by_generator);
  EC_POINT_free(by_issuer);
  return ok;
}

/*
 * ECDSA verification (SEC 1 §4.1.4) of a DER signature over a SHA-256 digest
 * by the key Q (`issuer_table`'s generator, or `key`): x(u1·G + u2·Q) mod n
 * = r. The same checks as ECDSA_verify: canonical DER only, and 1 <= r, s < n.
 */
static int verify_signature(Instance *instance, const EC_GROUP *issuer_table, const EC_POINT *key, const unsigned char *digest,
                            const unsigned char *der, size_t der_length) {
  const EC_GROUP *group = instance->group;
  const BIGNUM *order = EC_GROUP_get0_order(group);
  /* A P-256 signature is at most 72 bytes of DER; anything longer is not one. */
  if (der_length > MAX_SIGNATURE_LENGTH) return 0;
  const unsigned char *cursor = der;
  ECDSA_SIG *signature = d2i_ECDSA_SIG(NULL, &cursor, (long)der_length);
  unsigned char *canonical = NULL;
  int canonical_length = signature == NULL ? -1 : i2d_ECDSA_SIG(signature, &canonical);
  int valid = 0;
  const BIGNUM *r = NULL, *s = NULL;
  if (signature != NULL) ECDSA_SIG_get0(signature, &r, &s);
  /* One signature has one encoding: trailing bytes or a non-minimal length are refused, as OpenSSL does. */
  int well_formed = canonical_length == (int)der_length && cursor == der + der_length && memcmp(canonical, der, der_length) == 0 &&
                    !BN_is_zero(r) && !BN_is_negative(r) && BN_ucmp(r, order) < 0 && !BN_is_zero(s) && !BN_is_negative(s) &&
                    BN_ucmp(s, order) < 0;
  BN_CTX *numbers = instance->numbers;
  BN_CTX_start(numbers);
  BIGNUM *e = BN_CTX_get(numbers), *w = BN_CTX_get(numbers), *u1 = BN_CTX_get(numbers), *u2 = BN_CTX_get(numbers), *x = BN_CTX_get(numbers);
  EC_POINT *sum = EC_POINT_new(group);
  if (well_formed && x != NULL && sum != NULL) {
    /* SHA-256 is as long as the order of P-256: e is the whole digest, and the products reduce it mod n. */
    valid = BN_bin2bn(digest, SHA256_LENGTH, e) != NULL && invert_mod_order(instance, w, s) &&
            BN_mod_mul(u1, e, w, order, numbers) == 1 && BN_mod_mul(u2, r, w, order, numbers) == 1 &&
            combine(group, sum, u1, u2, issuer_table, key, numbers) && !EC_POINT_is_at_infinity(group, sum) &&
            EC_POINT_get_affine_coordinates(group, sum, x, NULL, numbers) == 1 && BN_nnmod(x, x, order, numbers) == 1 && BN_cmp(x, r) == 0;
  }
  EC_POINT_free(sum);
  BN_CTX_end(numbers);
  OPENSSL_free(canonical);
  ECDSA_SIG_free(signature);
  ERR_clear_error();
  return valid;
}

/* verify(verifier, message, signature): ECDSA-SHA256 over message by the verifier's key; false for a wrong or malformed signature. */
static napi_value verify(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  const unsigned char *bytes[2];
  size_t lengths[2];
  if (!arguments_of(env, info, 3, argv)) return NULL;
  bool from_table = false;
  napi_valuetype type = napi_undefined;
  /* Only an external is asked for its tag: napi_check_object_type_tag would throw for undefined or null. */
  if (napi_typeof(env, argv[0], &type) == napi_ok && type == napi_external &&
      napi_check_object_type_tag(env, argv[0], &ISSUER_VERIFIER_TAG, &from_table) != napi_ok) {
    from_table = false;
  }
  void *handle = unwrap_handle(env, argv[0], from_table ? &ISSUER_VERIFIER_TAG : &VERIFIER_TAG, "expected a verifier from createVerifier()");
  if (handle == NULL || !bytes_of(env, argv + 1, 2, bytes, lengths)) return NULL;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(bytes[0], lengths[0], digest);
  const EC_GROUP *issuer_table = from_table ? handle : NULL;
  const EC_POINT *key = from_table ? NULL : handle;
  return boolean_value(env, verify_signature(instance_of(env), issuer_table, key, digest, bytes[1], lengths[1]));
}

/* HMAC-SHA256 of the concatenated parts into out (32 bytes); 0 on failure. */
static int hmac_sha256(Instance *instance, const unsigned char *key, size_t key_length, const unsigned char *const *parts,
                       const size_t *lengths, size_t count, unsigned char *out) {
  unsigned int written = 0;
  /* A NULL key would mean "the previous key" to HMAC_Init_ex; an empty key is a valid key. */
  static const unsigned char empty_key = 0;
  if (HMAC_Init_ex(instance->hmac, key_length > 0 ? key : &empty_key, (int)key_length, instance->sha256, NULL) != 1) return 0;
  for (size_t index = 0; index < count; index += 1) {
    if (HMAC_Update(instance->hmac, parts[index], lengths[index]) != 1) return 0;
  }
  return HMAC_Final(instance->hmac, out, &written) == 1 && written == SHA256_LENGTH;
}

/* hmacSha256(key, data): the 32-byte HMAC-SHA256. */
static napi_value hmac(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  const unsigned char *bytes[2];
  size_t lengths[2];
  if (!byte_arguments(env, info, 2, argv, bytes, lengths)) return NULL;
  const unsigned char *key = bytes[0], *data = bytes[1];
  size_t key_length = lengths[0], data_length = lengths[1];
  napi_value result;
  unsigned char *out;
  if (napi_create_buffer(env, SHA256_LENGTH, (void **)&out, &result) != napi_ok) return throw_error(env, "cannot allocate the MAC");
  if (!hmac_sha256(instance_of(env), key, key_length, &data, &data_length, 1, out)) return throw_error(env, "HMAC-SHA256 failed");
  return result;
}

/*
 * hmacSha256TagMatches(key, bytes, tagLength): whether the last tagLength
 * bytes of `bytes` are the first tagLength bytes of HMAC-SHA256(key, the
 * bytes before them), compared in constant time. It allocates nothing: it
 * runs for every packet that reaches the capture loop, junk included.
 */
static napi_value hmac_tag_matches(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  const unsigned char *bytes[2];
  size_t lengths[2];
  if (!arguments_of(env, info, 3, argv) || !bytes_of(env, argv, 2, bytes, lengths)) return NULL;
  uint32_t tag_length = 0;
  if (napi_get_value_uint32(env, argv[2], &tag_length) != napi_ok || tag_length == 0 || tag_length > SHA256_LENGTH || tag_length > lengths[1]) {
    return throw_type_error(env, "a tag is 1..32 bytes and no longer than the bytes it ends");
  }
  const unsigned char *data = bytes[1];
  size_t data_length = lengths[1] - tag_length;
  unsigned char mac[SHA256_LENGTH];
  if (!hmac_sha256(instance_of(env), bytes[0], lengths[0], &data, &data_length, 1, mac)) return throw_error(env, "HMAC-SHA256 failed");
  return boolean_value(env, CRYPTO_memcmp(mac, data + data_length, tag_length) == 0);
}

/* hkdfSha256(ikm, salt, info, length): RFC 5869 extract-then-expand. */
static napi_value hkdf(napi_env env, napi_callback_info callback_info) {
  napi_value argv[4];
  const unsigned char *bytes[3];
  size_t lengths[3];
  if (!arguments_of(env, callback_info, 4, argv) || !bytes_of(env, argv, 3, bytes, lengths)) return NULL;
  const unsigned char *ikm = bytes[0], *salt = bytes[1], *info = bytes[2];
  size_t ikm_length = lengths[0], salt_length = lengths[1], info_length = lengths[2];
  uint32_t length = 0;
  if (napi_get_value_uint32(env, argv[3], &length) != napi_ok || length == 0 || length > HKDF_MAX_LENGTH) {
    return throw_type_error(env, "an HKDF-SHA256 output is 1..8160 bytes");
  }
  Instance *instance = instance_of(env);
  static const unsigned char no_salt[SHA256_LENGTH] = {0};
  unsigned char prk[SHA256_LENGTH], block[SHA256_LENGTH];
  if (!hmac_sha256(instance, salt_length > 0 ? salt : no_salt, salt_length > 0 ? salt_length : sizeof no_salt, &ikm, &ikm_length, 1, prk)) {
    return throw_error(env, "HKDF extract failed");
  }
  napi_value result;
  unsigned char *out;
  if (napi_create_buffer(env, length, (void **)&out, &result) != napi_ok) return throw_error(env, "cannot allocate the key");
  size_t filled = 0;
  for (unsigned char counter = 1; filled < length; counter += 1) {
    const unsigned char *parts[] = {block, info, &counter};
    size_t lengths[] = {counter == 1 ? 0 : SHA256_LENGTH, info_length, 1};
    if (!hmac_sha256(instance, prk, sizeof prk, parts, lengths, 3, block)) {
      OPENSSL_cleanse(prk, sizeof prk);
      return throw_error(env, "HKDF expand failed");
    }
    size_t take = length - filled < SHA256_LENGTH ? length - filled : SHA256_LENGTH;
    memcpy(out + filled, block, take);
    filled += take;
  }
  OPENSSL_cleanse(prk, sizeof prk);
  OPENSSL_cleanse(block, sizeof block);
  return result;
}

/* aes256GcmOpen(key, iv, aad, ciphertext, tag): the plaintext, or null when the tag does not match. */
static napi_value gcm_open(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  const unsigned char *bytes[5];
  size_t lengths[5];
  if (!byte_arguments(env, info, 5, argv, bytes, lengths)) return NULL;
  const unsigned char *key = bytes[0], *iv = bytes[1], *aad = bytes[2], *ciphertext = bytes[3], *tag = bytes[4];
  size_t key_length = lengths[0], iv_length = lengths[1], aad_length = lengths[2], ciphertext_length = lengths[3], tag_length = lengths[4];
  if (key_length != GCM_KEY_LENGTH || iv_length != GCM_IV_LENGTH || tag_length != GCM_TAG_LENGTH) {
    return throw_type_error(env, "AES-256-GCM takes a 32-byte key, a 12-byte IV and a 16-byte tag");
  }
  Instance *instance = instance_of(env);
  EVP_CIPHER_CTX *cipher = instance->cipher;
  napi_value result;
  unsigned char *plaintext;
  /* A zero-length Buffer may have no storage to write to. */
  if (napi_create_buffer(env, ciphertext_length, (void **)&plaintext, &result) != napi_ok) return throw_error(env, "cannot allocate the plaintext");
  unsigned char empty;
  unsigned char *target = ciphertext_length > 0 ? plaintext : &empty;
  int written = 0, final_written = 0;
  int ok = EVP_DecryptInit_ex(cipher, instance->aes_256_gcm, NULL, key, iv) == 1 &&
           (aad_length == 0 || EVP_DecryptUpdate(cipher, NULL, &written, aad, (int)aad_length) == 1) &&
           EVP_DecryptUpdate(cipher, target, &written, ciphertext, (int)ciphertext_length) == 1 &&
           EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LENGTH, (void *)tag) == 1 &&
           EVP_DecryptFinal_ex(cipher, target + written, &final_written) == 1;
  if (!ok) {
    if (ciphertext_length > 0) OPENSSL_cleanse(plaintext, ciphertext_length);
    ERR_clear_error();
    napi_get_null(env, &result);
  }
  return result;
}

/* The OpenSSL this module runs with: node's own. */
static napi_value openssl_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &result);
  return result;
}

NAPI_MODULE_INIT() {
  Instance *instance = calloc(1, sizeof *instance);
  if (instance == NULL) return NULL;
  instance->group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  instance->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  instance->aes_256_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
  instance->hmac = HMAC_CTX_new();
  instance->cipher = EVP_CIPHER_CTX_new();
  instance->numbers = BN_CTX_new();
  *(void **)&instance->curve_inverse = dlsym(RTLD_DEFAULT, "ossl_ec_group_do_inverse_ord");
  int complete = instance->group != NULL && instance->sha256 != NULL && instance->aes_256_gcm != NULL && instance->hmac != NULL &&
                 instance->cipher != NULL && instance->numbers != NULL;
  if (!complete || napi_set_instance_data(env, instance, instance_free, NULL) != napi_ok) {
    instance_free(env, instance, NULL);
    throw_error(env, "OpenSSL lacks P-256, SHA-256 or AES-256-GCM");
    return NULL;
  }
  napi_property_descriptor methods[] = {
      {"createAgreement", NULL, create_agreement, NULL, NULL, NULL, napi_default, NULL},
      {"derive", NULL, derive, NULL, NULL, NULL, napi_default, NULL},
      {"createVerifier", NULL, create_verifier, NULL, NULL, NULL, napi_default, NULL},
      {"createIssuerVerifier", NULL, create_issuer_verifier, NULL, NULL, NULL, napi_default, NULL},
      {"verify", NULL, verify, NULL, NULL, NULL, napi_default, NULL},
      {"hmacSha256", NULL, hmac, NULL, NULL, NULL, napi_default, NULL},
      {"hmacSha256TagMatches", NULL, hmac_tag_matches, NULL, NULL, NULL, napi_default, NULL},
      {"hkdfSha256", NULL, hkdf, NULL, NULL, NULL, napi_default, NULL},
      {"aes256GcmOpen", NULL, gcm_open, NULL, NULL, NULL, napi_default, NULL},
      {"opensslVersion", NULL, openssl_version, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof methods / sizeof methods[0], methods);
  return exports;
}
