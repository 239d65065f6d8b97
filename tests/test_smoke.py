import kowabunga


def test_admin_lists_no_user_on_a_fresh_database(deployment):
    assert kowabunga.UserApi(deployment.admin).list_users() == []


def test_account_creation_and_login(deployment):
    account = deployment.create_account("alice")
    client = deployment.login(account)
    me = kowabunga.UserApi(client).read_user(account.id)
    assert me.email == "alice@example.com"
    assert me.role == "user"
